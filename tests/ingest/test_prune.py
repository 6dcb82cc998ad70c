"""`capplan prune`: a late row stored before the gate existed hides the cluster until pruned;
--before with a namespace removes exactly that namespace's older rows; --dry-run changes nothing."""

from __future__ import annotations

import duckdb

from capplan.cli import app
from tests.ingest.conftest import fingerprint


def _csv(runner, db, *command: str) -> tuple[int, str]:
    result = runner.invoke(app, [*command, "--db", str(db), "-f", "csv"])
    return result.exit_code, result.stdout


def _plant_late_row(db) -> None:
    """What a schema-1 capplan accepted: one sample in 2099 (and its pod interval stretched to it)."""
    con = duckdb.connect(str(db))
    try:
        series_id, ns, pod = con.execute("SELECT series_id, namespace, pod FROM series ORDER BY series_id LIMIT 1").fetchone()
        con.execute("INSERT INTO usage_raw VALUES (?, TIMESTAMP_S '2099-01-01 00:00:00', 100, 1)", [series_id])
        con.execute("UPDATE pods SET valid_to = TIMESTAMP '2099-01-01 00:00:00' WHERE namespace = ? AND pod = ? "
                    "AND valid_to = (SELECT max(valid_to) FROM pods WHERE namespace = ? AND pod = ?)", [ns, pod, ns, pod])
    finally:
        con.close()


def test_prune_after_brings_back_the_cluster(runner, sample_db) -> None:
    code, nodes_before = _csv(runner, sample_db, "nodes")
    assert code == 0
    _plant_late_row(sample_db)
    assert _csv(runner, sample_db, "nodes")[0] == 6  # no node was observed at 2099-01-01
    # --end puts the window back where the data is, without removing anything
    assert _csv(runner, sample_db, "nodes", "--end", "2026-11-15T00:00:00Z") == (0, nodes_before)
    assert _csv(runner, sample_db, "nodes", "--end", "2026-10-01T00:00:00Z")[0] == 6  # before any sample
    planted = fingerprint(sample_db)
    dry = runner.invoke(app, ["prune", "--after", "2026-11-15T00:00:00Z", "--dry-run", "--db", str(sample_db)])
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.startswith("would remove: usage_samples 1, ") and "pods 0 (+1 cut)" in dry.stdout, dry.stdout
    assert fingerprint(sample_db) == planted
    done = runner.invoke(app, ["prune", "--after", "2026-11-15T00:00:00Z", "--db", str(sample_db)])
    assert done.exit_code == 0 and done.stdout.startswith("removed: usage_samples 1, "), done.stdout
    assert _csv(runner, sample_db, "nodes") == (0, nodes_before)


def test_prune_before_in_one_namespace(runner, sample_db) -> None:
    con = duckdb.connect(str(sample_db), read_only=True)
    web_old = con.execute("SELECT count(*) FROM usage_samples JOIN series USING (series_id) "
                          "WHERE namespace = 'web' AND ts < TIMESTAMP '2026-11-05 00:00:00'").fetchone()[0]
    others = con.execute("SELECT count(*) FROM usage_samples JOIN series USING (series_id) "
                         "WHERE namespace <> 'web'").fetchone()[0]
    nodes = con.execute("SELECT count(*), min(valid_from) FROM nodes").fetchone()
    con.close()
    assert web_old > 0
    result = runner.invoke(app, ["prune", "--before", "2026-11-05T00:00:00Z", "-n", "web", "--db", str(sample_db)])
    assert result.exit_code == 0, result.stderr
    assert f"usage_samples {web_old:,}" in result.stdout, result.stdout
    con = duckdb.connect(str(sample_db), read_only=True)
    assert con.execute("SELECT count(*) FROM usage_samples JOIN series USING (series_id) "
                       "WHERE namespace = 'web' AND ts < TIMESTAMP '2026-11-05 00:00:00'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM usage_samples JOIN series USING (series_id) "
                       "WHERE namespace <> 'web'").fetchone()[0] == others
    assert con.execute("SELECT count(*), min(valid_from) FROM nodes").fetchone() == nodes  # nodes untouched
    assert con.execute("SELECT min(valid_from) FROM pods WHERE namespace = 'web'").fetchone()[0].isoformat() \
        >= "2026-11-05T00:00:00"


def test_prune_option_nonsense_is_usage(runner, sample_db) -> None:
    before = fingerprint(sample_db)
    for args in (["prune"], ["prune", "--after", "soon"], ["prune", "--before", "2026-11-10", "--after", "2026-11-01"]):
        result = runner.invoke(app, [*args, "--db", str(sample_db)])
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith("capplan: ") and len(result.stderr.strip().splitlines()) == 1
    assert fingerprint(sample_db) == before
