"""Series identity (namespace, pod, container; the node is an attribute), conflicts with stored
samples, --replace, and SIGINT/SIGTERM during an import."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import store
from capplan.cli import app
from tests.ingest import corpus
from tests.ingest.conftest import fingerprint

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "schema1_split_series.duckdb.gz"


def _csv(rows: list[dict], path: Path) -> Path:
    pl.DataFrame(rows).write_csv(path)
    return path


def _namespace_p95(runner, db: Path, namespace: str) -> float:
    result = runner.invoke(app, ["namespaces", "--db", str(db), "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    frame = pl.read_csv(result.stdout.encode())
    return frame.filter(pl.col("namespace") == namespace)["cpu_usage_p95_cores"][0]


def test_with_and_without_node_is_one_series(runner, tmp_path) -> None:
    rows = corpus.good_rows(12, node=False)
    db = tmp_path / "db.duckdb"
    first = runner.invoke(app, ["import", str(_csv(rows, tmp_path / "a.csv")), "--db", str(db)])
    assert first.exit_code == 0 and "12 new samples of 12 read" in first.stdout, first.stdout
    p95 = _namespace_p95(runner, db, rows[0]["namespace"])
    with_node = [{**r, "node": "node-1"} for r in rows]
    second = runner.invoke(app, ["import", str(_csv(with_node, tmp_path / "b.csv")), "--db", str(db)])
    assert second.exit_code == 0 and "0 new samples of 12 read" in second.stdout, second.stdout
    assert _namespace_p95(runner, db, rows[0]["namespace"]) == p95
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), min(node) FROM series").fetchone() == (1, "node-1")
    assert con.execute("SELECT count(*) FROM usage_samples").fetchone()[0] == 12
    # and the other way round: known node first, then without: still one series on node-1
    con.close()
    third = runner.invoke(app, ["import", str(_csv(rows, tmp_path / "a.csv")), "--db", str(db)])
    assert "0 new samples of 12 read" in third.stdout
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), min(node) FROM series").fetchone() == (1, "node-1")


def test_conflicts_are_counted_kept_and_replaced_on_request(runner, tmp_path) -> None:
    rows = corpus.good_rows(6)
    db = tmp_path / "db.duckdb"
    assert runner.invoke(app, ["import", str(_csv(rows, tmp_path / "a.csv")), "--db", str(db)]).exit_code == 0
    corrected = [{**r, "cpu_cores": 0.5} if i in (1, 3) else r for i, r in enumerate(rows)]
    path = _csv(corrected + [{**rows[-1], "timestamp": "2026-11-10T13:00:00Z"}], tmp_path / "b.csv")
    kept = runner.invoke(app, ["import", str(path), "--db", str(db)])
    assert kept.exit_code == 0
    assert "1 new samples of 7 read, 2 conflicting" in kept.stdout, kept.stdout
    assert "2 samples were already stored with other values: the stored values were kept" in kept.stderr

    def cpu() -> list[float]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return [round(v, 4) for (v,) in con.execute("SELECT cpu_cores FROM usage_samples ORDER BY ts").fetchall()]
        finally:
            con.close()

    assert cpu() == [round(r["cpu_cores"], 4) for r in rows] + [round(rows[-1]["cpu_cores"], 4)]
    replaced = runner.invoke(app, ["import", str(path), "--db", str(db), "--replace"])
    assert replaced.exit_code == 0
    assert "0 new samples of 7 read, 2 conflicting (2 replaced)" in replaced.stdout, replaced.stdout
    assert cpu() == [round(r["cpu_cores"], 4) for r in corrected] + [round(rows[-1]["cpu_cores"], 4)]
    again = runner.invoke(app, ["import", str(path), "--db", str(db)])
    assert "0 new samples of 7 read, 0 new spec rows" in again.stdout, again.stdout  # nothing conflicts now


def test_migration_002_merges_series_split_by_schema_1(tmp_path) -> None:
    """A database written by capplan before this change (tests/ingest/fixtures/
    make_schema1_split_series.py): web/api-1's two containers imported without, then with a node,
    the second import correcting app's sample at 00:15 to 0.75; data/db-0 moved node-1 -> node-2."""
    db = tmp_path / "old.duckdb"
    db.write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    raw = duckdb.connect(str(db), read_only=True)
    assert raw.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 1
    assert raw.execute("SELECT count(*) FROM series").fetchone()[0] == 6
    assert raw.execute("SELECT count(*) FROM usage_samples").fetchone()[0] == 60
    raw.close()
    con = store.open_db(db)
    try:
        series = con.execute("SELECT namespace, pod, container, node FROM series ORDER BY 1, 2, 3").fetchall()
        assert series == [("data", "db-0", "pg", "node-2"), ("web", "api-1", "app", "node-1"),
                          ("web", "api-1", "sidecar", "node-1")]
        # 12 samples per container (the duplicates are gone), the correction kept
        per = con.execute("SELECT s.container, count(*), sum(u.cpu_cores) FROM usage_samples u JOIN series s "
                          "USING (series_id) GROUP BY 1 ORDER BY 1").fetchall()
        assert [(c, n) for c, n, _ in per] == [("app", 12), ("pg", 12), ("sidecar", 12)]
        assert dict((c, round(v, 4)) for c, _, v in per)["app"] == round(11 * 0.5 + 0.75, 4)
        history = con.execute("SELECT n.node, n.valid_from, n.valid_to FROM series_nodes AS n JOIN series AS s USING (series_id) "
                              "WHERE pod = 'db-0' ORDER BY valid_from").fetchall()
        assert [(n, f.strftime("%H:%M"), t.strftime("%H:%M")) for n, f, t in history] == [
            ("node-1", "00:00", "00:25"), ("node-2", "00:30", "00:55")]
        # and writing the same rows again adds nothing
        frame = pl.DataFrame({"namespace": ["web"], "pod": ["api-1"], "container": ["app"], "node": [""],
                              "ts": [datetime(2026, 11, 20, 0, 15)],
                              "cpu_cores": [0.75], "memory_bytes": [100_000_003]})
        assert store.write_usage(con, frame) == 0
    finally:
        con.close()


def _big_csv(path: Path, rows: int) -> Path:
    """A long-format file with `rows` well-formed rows over many containers of one namespace."""
    ns, _, _, node = corpus.sample_identity()
    containers = 200
    steps = rows // containers
    base = pl.datetime_range(corpus.T0, corpus.T0 + pl.duration(minutes=steps - 1), "1m", eager=True)
    frame = pl.DataFrame({"pod": [f"load-{i}" for i in range(containers)]}).join(
        pl.DataFrame({"timestamp": base}), how="cross").with_columns(
        namespace=pl.lit("load"), container=pl.lit("c"), node=pl.lit(node),
        cpu_cores=pl.lit(0.01), memory_bytes=pl.lit(1_000_000))
    frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    return path


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_import_rolls_back(signum, code, sample_db, tmp_path) -> None:
    path = _big_csv(tmp_path / "big.csv", 2_000_000)
    before = fingerprint(sample_db)
    proc = subprocess.Popen([sys.executable, "-m", "capplan", "import", str(path), "--db", str(sample_db)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "... passed the checks; writing": the write has begun
    assert "passed the checks; writing" in first, first
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (proc.returncode, first, err, out)
    assert "stopped" in err and "nothing was imported" in err
    assert fingerprint(sample_db)[1] == before[1]


def test_without_spec_data_requests_and_qos_are_unknown_not_zero(runner, tmp_path) -> None:
    """Usage imported without request/limit columns: requests, limits and QoS are unknown (empty
    in CSV, "?" in tables), never 0 or BestEffort."""
    rows = corpus.good_rows(12)
    db = tmp_path / "db.duckdb"
    assert runner.invoke(app, ["import", str(_csv(rows, tmp_path / "a.csv")), "--db", str(db)]).exit_code == 0
    ns = runner.invoke(app, ["namespaces", "--db", str(db), "-f", "csv"])
    assert ns.exit_code == 0, ns.stderr
    row = pl.read_csv(ns.stdout.encode(), infer_schema_length=None).row(0, named=True)
    for column in ("pods", "cpu_requests_cores", "cpu_limits_cores", "memory_requests_bytes", "memory_limits_bytes"):
        assert row[column] is None, (column, row)
    assert row["cpu_usage_p95_cores"] is not None
    table = runner.invoke(app, ["namespaces", "--db", str(db)], env={"COLUMNS": "300"})
    line = next(t for t in table.stdout.splitlines() if rows[0]["namespace"] in t)
    assert "?" in line and " 0 " not in line, line
    rec = runner.invoke(app, ["recommend", "--db", str(db), "-f", "csv", "--min-history", "30m"])
    assert rec.exit_code == 0, rec.stderr
    for r in pl.read_csv(rec.stdout.encode(), infer_schema_length=None).iter_rows(named=True):
        assert r["qos_class_current"] is None and r["cpu_request_current"] is None, r
    # with the columns present but empty, the values are known to be unset: BestEffort
    unset = [{**r, "cpu_request_cores": "", "memory_limit_bytes": ""} for r in rows]
    db2 = tmp_path / "db2.duckdb"
    assert runner.invoke(app, ["import", str(_csv(unset, tmp_path / "b.csv")), "--db", str(db2)]).exit_code == 0
    rec2 = runner.invoke(app, ["recommend", "--db", str(db2), "-f", "csv", "--min-history", "30m"])
    assert {r["qos_class_current"] for r in pl.read_csv(rec2.stdout.encode(), infer_schema_length=None)
            .iter_rows(named=True)} == {"BestEffort"}
