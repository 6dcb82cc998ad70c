"""Fixtures for the ingest-gate tests: the bundled sample as a database, and its fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "series",
          "usage_samples", "restarts")


def fingerprint(db: Path) -> tuple[str, dict[str, int]]:
    """The file's bytes (sha256) and every data table's row count."""
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()
    return digest, counts
