"""Issue 13's corpus: every bad file is refused whole with exit 4 and `FILE:LINE: column: reason`,
the count of bad rows, and the database exactly as it was (bytes and row counts), whether the
database exists or not; never exit 1."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from capplan.cli import app
from tests.ingest import corpus
from tests.ingest.conftest import fingerprint


def _refused(result, path: Path, line: int | None, column: str, reason: str, bad_rows: int | None = None) -> None:
    assert result.exit_code == 4, (result.exit_code, result.stderr, result.stdout)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    where = re.escape(str(path)) + (f":{line}" if line is not None else "")
    head = f"^capplan: {where}: " + (re.escape(column) + ": " if column else "")
    assert re.search(head, message), (head, message)
    assert re.search(reason, message), (reason, message)
    if bad_rows is not None:
        assert f"({bad_rows:,} bad row" in message, message


# Text that is no number or time is a CSV case only: a typed Parquet column cannot hold it.
LONG_RUNS = [(case, fmt) for case in corpus.LONG_CASES for fmt in ("csv", "parquet")
             if not (case.csv_only and fmt == "parquet")]


@pytest.mark.parametrize(("case", "fmt"), LONG_RUNS, ids=[f"{c.name}-{f}" for c, f in LONG_RUNS])
def test_long_format_case_is_refused_whole(case, fmt, runner, sample_db, tmp_path) -> None:
    path = corpus.write_long(case, tmp_path, fmt)
    before = fingerprint(sample_db)
    result = runner.invoke(app, ["import", str(path), "--db", str(sample_db)])
    line = corpus.expected_line(case, fmt)
    _refused(result, path, line, case.column, case.reason, case.bad_rows if case.row is not None else None)
    assert fingerprint(sample_db) == before


SHIFT = timedelta(days=10)  # past the sample's last sample (2026-11-14)


def _shifted(case: corpus.LongCase) -> corpus.LongCase:
    """The case's rows 10 days later (times relative to now, or no time, as they are)."""
    def rows() -> list[dict]:
        out = []
        for r in case.rows():
            stamp = r.get("timestamp")
            if isinstance(stamp, str) and stamp.startswith(corpus.T0.strftime("%Y-%m-%d")):
                stamp = (datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ") + SHIFT).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append({**r, "timestamp": stamp} if "timestamp" in r else r)
        return out
    return replace(case, rows=rows)


@pytest.mark.parametrize(("case", "fmt"), LONG_RUNS, ids=[f"{c.name}-{f}" for c, f in LONG_RUNS])
def test_long_format_case_past_the_stored_samples_is_refused_whole(case, fmt, runner, sample_db, tmp_path) -> None:
    """The same cases at times the database holds no sample at: the file is written straight into
    the store (capplan.file_ingest: no staged copy) and rolled back; the same messages, the same
    bytes."""
    con = duckdb.connect(str(sample_db), read_only=True)
    try:
        (newest,) = con.execute("SELECT max(ts) FROM usage_samples").fetchone()
    finally:
        con.close()
    assert newest < corpus.T0 + SHIFT
    path = corpus.write_long(_shifted(case), tmp_path, fmt)
    before = fingerprint(sample_db)
    result = runner.invoke(app, ["import", str(path), "--db", str(sample_db)])
    line = corpus.expected_line(case, fmt)
    _refused(result, path, line, case.column, case.reason, case.bad_rows if case.row is not None else None)
    assert fingerprint(sample_db) == before


def test_good_rows_past_the_stored_samples_are_imported(runner, sample_db, tmp_path) -> None:
    good = _shifted(corpus.LongCase("good", corpus.good_rows, None, "", ""))
    path = corpus.write_long(good, tmp_path, "csv")
    result = runner.invoke(app, ["import", str(path), "--db", str(sample_db)])
    assert result.exit_code == 0, result.stderr
    assert "6 new samples of 6 read" in result.stdout


@pytest.mark.parametrize("case", corpus.LONG_CASES[:3] + corpus.LONG_CASES[11:12], ids=lambda c: c.name)
def test_bad_file_into_a_new_database_creates_nothing(case, runner, tmp_path) -> None:
    path = corpus.write_long(case, tmp_path, "csv")
    db = tmp_path / "new.duckdb"
    result = runner.invoke(app, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 4, result.stderr
    assert not db.exists()


@pytest.mark.parametrize("case", corpus.FOLDER_CASES, ids=[c.name for c in corpus.FOLDER_CASES])
def test_sample_folder_case_is_refused_whole(case, runner, sample_db, tmp_path) -> None:
    folder = corpus.write_folder(case, tmp_path)
    before = fingerprint(sample_db)
    result = runner.invoke(app, ["import", str(folder), "--db", str(sample_db)])
    _refused(result, folder / case.file, corpus.folder_expected_row(case), case.column, case.reason)
    assert fingerprint(sample_db) == before
    # into a new database: refused the same way, and no file is left behind
    fresh = tmp_path / "fresh.duckdb"
    again = runner.invoke(app, ["import", str(folder), "--db", str(fresh)])
    _refused(again, folder / case.file, corpus.folder_expected_row(case), case.column, case.reason)
    assert not fresh.exists()


def test_the_demo_answers_the_same_after_every_bad_file(runner, sample_db, tmp_path) -> None:
    commands = [["nodes"], ["namespaces"], ["cluster"], ["fit", "--cpu", "500m", "--memory", "1Gi"],
                ["eviction"], ["recommend"], ["forecast"], ["rollout"]]

    def answers() -> list[str]:
        out = []
        for command in commands:
            result = runner.invoke(app, [*command, "--db", str(sample_db), "-f", "csv"])
            assert result.exit_code == 0, (command, result.stderr)
            out.append(result.stdout)
        return out

    before = answers()
    for case in corpus.LONG_CASES:
        for fmt in ("csv",) if case.csv_only else ("csv", "parquet"):
            assert runner.invoke(app, ["import", str(corpus.write_long(case, tmp_path, fmt)), "--db",
                                       str(sample_db)]).exit_code == 4
    for case in corpus.FOLDER_CASES:
        folder = corpus.write_folder(case, tmp_path / "folders")
        assert runner.invoke(app, ["import", str(folder), "--db", str(sample_db)]).exit_code == 4
        shutil.rmtree(folder)
    after = answers()
    for command, was, now in zip(commands, before, after, strict=True):
        # the same rows and values; floats to 1e-9 (DuckDB's parallel sums may differ in the last bit)
        assert_frame_equal(pl.read_csv(now.encode(), infer_schema_length=None),
                           pl.read_csv(was.encode(), infer_schema_length=None), check_exact=False, rel_tol=1e-9), command
