"""Unresolved PriorityClass names are listed in a warning and marked in the output (issue 13):
the bundled sample's pods use web-critical and data-critical, which no --priority-classes file
or --priority gives."""

from __future__ import annotations

import polars as pl

from capplan.cli import app
from tests.ingest.corpus import SAMPLE_DIR


def test_unresolved_priority_classes_are_named(runner, sample_db_readonly) -> None:
    pods = pl.read_parquet(SAMPLE_DIR / "pods.parquet")
    used = sorted(c for c in pods["priority_class"].drop_nulls().unique().to_list() if c)
    builtin = {"system-cluster-critical", "system-node-critical"}
    unresolved = [c for c in used if c not in builtin]
    assert unresolved == ["data-critical", "web-critical"]  # what the sample's README promises
    result = runner.invoke(app, ["eviction", "--db", str(sample_db_readonly), "-f", "csv", "--view", "qos"])
    assert result.exit_code == 0, result.stderr
    assert "warning: PriorityClass data-critical, web-critical not given" in result.stderr
    rows = pl.read_csv(result.stdout.encode(), infer_schema_length=None)
    marked = rows.filter(~pl.col("priority_known"))["priority_class"].unique().sort().to_list()
    assert marked == unresolved
    ranked = runner.invoke(app, ["eviction", "--db", str(sample_db_readonly), "-f", "csv"])
    assert "priority_known" in ranked.stdout.splitlines()[0].split(",")
    given = runner.invoke(app, ["eviction", "--db", str(sample_db_readonly), "-f", "csv", "--view", "qos",
                                "--priority", "web-critical=1000000", "--priority", "data-critical=1000"])
    assert given.exit_code == 0 and "warning" not in given.stderr
    assert pl.read_csv(given.stdout.encode(), infer_schema_length=None)["priority_known"].all()
