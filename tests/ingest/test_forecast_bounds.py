"""Forecasts compare usage only with what bounds usage (allocatable, a quota's limits.*) and
requests with requests.* quotas (issue 13: ml's memory usage was projected against its
requests.memory quota and listed as running out in 16 days)."""

from __future__ import annotations

import duckdb
import polars as pl

from capplan.cli import app


def _forecast(runner, db) -> pl.DataFrame:
    result = runner.invoke(app, ["forecast", "--db", str(db), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    return pl.read_csv(result.stdout.encode(), infer_schema_length=None).filter(pl.col("scope") == "namespace:ml")


def test_usage_is_never_projected_against_a_requests_quota(runner, sample_db) -> None:
    con = duckdb.connect(str(sample_db), read_only=True)
    quotas = dict(con.execute("SELECT resource, hard FROM resource_quotas WHERE namespace = 'ml'").fetchall())
    con.close()
    assert "requests.memory" in quotas and "limits.memory" not in quotas
    rows = {(r["resource"], r["basis"]): r for r in _forecast(runner, sample_db).iter_rows(named=True)}
    assert rows[("memory", "requests")]["allocatable"] == quotas["requests.memory"]
    assert rows[("memory", "requests")]["limit_source"].endswith("requests.memory")
    assert rows[("memory", "usage")]["limit_source"].startswith("share:")
    assert rows[("memory", "usage")]["allocatable"] != quotas["requests.memory"]
    # a limits.memory quota does bound usage
    con = duckdb.connect(str(sample_db))
    con.execute("INSERT INTO resource_quotas (namespace, quota, resource, valid_from, valid_to, hard) "
                "SELECT namespace, quota, 'limits.memory', valid_from, valid_to, 96 * 2^30 "
                "FROM resource_quotas WHERE namespace = 'ml' AND resource = 'requests.memory'")
    con.close()
    rows = {(r["resource"], r["basis"]): r for r in _forecast(runner, sample_db).iter_rows(named=True)}
    assert rows[("memory", "usage")]["allocatable"] == 96 * 2**30
    assert rows[("memory", "usage")]["limit_source"].endswith("limits.memory")
    assert rows[("memory", "requests")]["allocatable"] == quotas["requests.memory"]
