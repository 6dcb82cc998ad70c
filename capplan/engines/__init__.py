"""Engines other than DuckDB that run capplan's per-sample queries (`--engine`, `--lake`).

An engine is below the analyses: it plugs into capplan.store.query (store.using_engine), so the
analyses run unchanged and never import it. Each engine module imports its own heavy dependency
lazily (`capplan --help` loads none of them).
"""

from __future__ import annotations

from capplan.errors import UsageError

ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"


def check_engine(engine: str, lake_dir: str | None) -> None:
    """`--engine` and `--lake` together make sense (else UsageError, exit 2)."""
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "spark" and not lake_dir:
        raise UsageError("--engine spark needs --lake DIR (written by `capplan export-lake DIR`)")
    if engine != "spark" and lake_dir:
        raise UsageError("--lake is read by --engine spark only")
