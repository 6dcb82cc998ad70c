"""`capplan import FILE` on files bigger than one DuckDB vector (2,048 rows) and row group, in an
order that is neither by container nor by time: DuckDB reads such files in parallel, so these pin
that the lines it names are the file's lines, that the same container and time twice is found
wherever the two rows are, and that the samples land once each, in the store's order
(capplan.store.STORED_ORDER). Expected values come from the rows written, in plain Python."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from capplan import file_ingest
from capplan.errors import BadInputError
from capplan.importer import import_long_format

T0 = datetime(2026, 11, 10)
CONTAINERS, STEPS = 250, 160  # 40,000 rows


def _rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"namespace": f"ns-{c % 7}", "pod": f"pod-{c}", "container": "app",
             "timestamp": T0 + timedelta(minutes=5 * s),
             # whole millicores and KiB: what is stored is exactly what was written
             "cpu_cores": rng.randint(1, 4000) / 1000, "memory_bytes": rng.randint(1, 2**20) * 1024}
            for c in range(CONTAINERS) for s in range(STEPS)]
    rng.shuffle(rows)
    return rows


STORED_SAMPLES_SQL = "SELECT s.pod, u.ts, u.cpu_mcores, u.memory_kib FROM usage_raw AS u JOIN series AS s"


def _write(rows: list[dict], path: Path, row_group_size: int = 5_000) -> Path:
    frame = pl.DataFrame(rows)
    if path.suffix == ".csv":
        frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)
    else:
        frame.write_parquet(path, row_group_size=row_group_size)
    return path


def _line(index: int, suffix: str) -> int:
    return index + (2 if suffix == ".csv" else 1)


def _out_of_order(con: duckdb.DuckDBPyConnection, *, clustered: bool) -> tuple[int, int]:
    """Rows of usage_raw not after the row stored before them in their UTC day (rowid order): by
    (series_id // 64, ts, series_id) when `clustered` (store.CLUSTERED_ORDER: a sorted write puts
    each day in it), else by (ts, series_id) (store.STORED_ORDER: appended as the file came); and the
    ranges usage_raw_unclustered names (a write in time order records its span there)."""
    key = "series_id // 64, ts, series_id" if clustered else "ts, series_id"
    previous = "pid // 64, pts, pid" if clustered else "pts, pid"
    out = con.execute(
        f"SELECT count(*) FROM (SELECT series_id, ts, lag(ts) OVER w AS pts, lag(series_id) OVER w AS pid "
        f"FROM usage_raw WINDOW w AS (PARTITION BY CAST(ts AS DATE) ORDER BY rowid)) "
        f"WHERE pts IS NOT NULL AND ({key}) <= ({previous})").fetchone()[0]
    marked = con.execute("SELECT count(*) FROM usage_raw_unclustered").fetchone()[0]
    return out, marked


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_shuffled_file_with_repeated_rows_lands_once_in_stored_order(suffix, tmp_path) -> None:
    rows = _rows(1)
    repeated = rows + random.Random(2).sample(rows, 3_000)  # the same samples again, same values
    path = _write(repeated, tmp_path / f"usage{suffix}")
    db = tmp_path / "db.duckdb"
    summary = import_long_format(path, db)
    assert (summary.samples_read, summary.samples) == (len(repeated), len(rows))
    stored, out_of_order = _stored(db, clustered=False)
    assert sorted(stored) == _expected(rows)  # every row of the file once, in millicores and KiB
    # the repeats send it through the stage, whose rows are appended in the stored order (their
    # span left to store.cluster_usage)
    assert out_of_order == (0, 1)
    assert import_long_format(path, db).samples == 0  # and again: nothing new


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_clash_deep_in_a_big_file_names_both_lines(suffix, tmp_path) -> None:
    rows = _rows(3)
    first, second = 7_321, 36_001
    rows[second] = {**rows[first], "cpu_cores": rows[first]["cpu_cores"] + 0.5}
    path = _write(rows, tmp_path / f"usage{suffix}")
    db = tmp_path / "db.duckdb"
    with pytest.raises(BadInputError) as refused:
        import_long_format(path, db)
    assert str(refused.value) == (
        f"{path}:{_line(second, suffix)}: cpu_cores: {rows[second]['cpu_cores']:g} conflicts with line "
        f"{_line(first, suffix)} ({rows[first]['cpu_cores']:g}): the same container and time twice "
        "(2 bad rows; nothing was imported)")
    assert not db.exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_first_bad_row_of_a_big_file_is_named_by_its_line(suffix, tmp_path) -> None:
    rows = _rows(4)
    bad = {12_345: {"memory_bytes": -1024}, 30_000: {"cpu_cores": -0.5}, 39_999: {"cpu_cores": 20_000.0}}
    for index, change in bad.items():
        rows[index] = {**rows[index], **change}
    path = _write(rows, tmp_path / f"usage{suffix}")
    with pytest.raises(BadInputError) as refused:
        import_long_format(path, tmp_path / "db.duckdb")
    assert str(refused.value) == (f"{path}:{_line(12_345, suffix)}: memory_bytes: -1024 is negative "
                                  "(3 bad rows; nothing was imported)")


@pytest.mark.parametrize("column", sorted(file_ingest.DEFERRED_UPPER))
def test_the_writes_guard_refuses_what_the_gates_checks_refuse(column) -> None:
    """The guard a direct write puts on a usage column whose checks it makes (deferred_bad) is true
    for exactly the values the gate's checks of that column refuse, edges included (each value
    judged by DuckDB through both SQL texts)."""
    from capplan import gate

    upper = file_ingest.DEFERRED_UPPER[column]
    values = [None, float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -5e-324, 5e-324, 1e-300, 0.5, 1.0,
              upper, math.nextafter(upper, math.inf), math.nextafter(upper, 0), upper * 2, -upper, 1e308]
    checks = [c for c in gate.usage_checks() if c.column == column]
    assert len(checks) == 4  # NaN, infinite, negative, above the bound
    gate_bad = " OR ".join(f"coalesce({c.sql}, false)" for c in checks)
    # as SQL literals: a NaN parameter would reach DuckDB as NULL
    literals = ", ".join("NULL" if v is None else f"CAST('{v!r}' AS DOUBLE)" for v in values)
    con = duckdb.connect()
    try:
        judged = con.execute(
            f"SELECT v, {gate_bad}, coalesce({file_ingest.deferred_bad((column,))}, false) "
            f"FROM (SELECT unnest([{literals}]) AS v, v AS {column}) AS r").fetchall()
    finally:
        con.close()
    assert len(judged) == len(values) and sum(v is not None and math.isnan(v) for v, _, _ in judged) == 1
    assert [by_gate for _, by_gate, _ in judged] == [by_guard for _, _, by_guard in judged]
    # by hand: NaN, both infinities, the two negatives and the three values above the bound
    assert sum(by_gate for _, by_gate, _ in judged) == 8


@pytest.mark.parametrize("order", ["days", "by_time", "one_sort", "presorted"])
@pytest.mark.parametrize(("column", "value", "reason"), [
    ("cpu_cores", float("nan"), "NaN is not a number"), ("memory_bytes", -1024, "-1024 is negative"),
    ("cpu_cores", float("inf"), "inf is not finite"),
    ("memory_bytes", 2**51, "2.2518e+15 is above 1.1259e+15 bytes, beyond any machine: a unit mix-up?")])
def test_a_value_the_write_refuses_is_named_as_the_summary_names_it(order, column, value, reason, tmp_path,
                                                                     monkeypatch) -> None:
    """A Parquet file into a store without nodes: the checks of cpu_cores and memory_bytes are left to
    the direct write (two days written a day at a time, or sorted by time, or in one sort; one day
    sorted by time is written as it comes, on one thread). A bad value in the last day makes the
    write roll back and the summary name the first bad row, as a summary making every check names
    it; the store keeps what it held."""
    days = 1 if order == "presorted" else 2
    rows = _days_rows(16, T0, 48 * days)
    if order in ("by_time", "presorted"):
        rows.sort(key=lambda r: (r["timestamp"], r["namespace"], r["pod"], r["container"]))
    monkeypatch.setattr(file_ingest, "SLICE_ROWS", CONTAINERS * 96 // (3 if order == "days" else 1))
    index = next(i for i, r in enumerate(rows) if r["timestamp"] >= T0 + timedelta(days=days - 1, hours=5))
    rows[index] = {**rows[index], column: value}
    rows[index + 7] = {**rows[index + 7], "cpu_cores": -1.0}  # a second bad row, later in the file
    path = _write(rows, tmp_path / "usage.parquet", 4_000)
    db = tmp_path / "db.duckdb"
    earlier = _write(_days_rows(17, T0 - timedelta(days=5), 48), tmp_path / "earlier.parquet", 4_000)
    assert import_long_format(earlier, db).samples == CONTAINERS * 48
    before = _stored(db, clustered=True)
    real = file_ingest.deferrable_checks
    deferred: list[tuple[str, ...]] = []
    monkeypatch.setattr(file_ingest, "deferrable_checks", lambda *a: deferred.append(real(*a)) or deferred[-1])
    real_write = file_ingest.write_staged
    presorted: list[bool | None] = []

    def write_staged(con, staged, **kwargs):
        try:
            return real_write(con, staged, **kwargs)
        finally:
            presorted.append(staged.presorted)

    monkeypatch.setattr(file_ingest, "write_staged", write_staged)
    with pytest.raises(BadInputError) as refused:
        import_long_format(path, db)
    assert deferred == [("cpu_cores", "memory_bytes")]
    assert presorted == [order == "presorted"]
    assert str(refused.value) == f"{path}:{index + 1}: {column}: {reason} (2 bad rows; nothing was imported)"
    assert _stored(db, clustered=True) == before
    monkeypatch.setattr(file_ingest, "deferrable_checks", lambda *a: ())
    with pytest.raises(BadInputError) as by_summary:
        import_long_format(path, db)
    assert str(by_summary.value) == str(refused.value)


def test_checks_are_left_to_the_write_only_without_nodes_or_samples_in_the_files_span(tmp_path, monkeypatch) -> None:
    """The summary makes every check when the cluster has a stored node (the bounds by node need
    each node's largest usage) or the store has samples in the file's span (by its row-group
    statistics), and leaves those of cpu_cores and memory_bytes to the write otherwise (a CSV: never)."""
    from capplan.importer import import_sample
    from tests.ingest import corpus

    real = file_ingest.deferrable_checks
    deferred: list[tuple[str, ...]] = []
    monkeypatch.setattr(file_ingest, "deferrable_checks", lambda *a: deferred.append(real(*a)) or deferred[-1])
    db = tmp_path / "db.duckdb"
    rows = _days_rows(18, T0, 48)
    path = _write(rows, tmp_path / "usage.parquet", 4_000)
    assert import_long_format(_write(rows, tmp_path / "usage.csv"), tmp_path / "csv.duckdb").samples == len(rows)
    assert import_long_format(path, db).samples == len(rows)
    assert import_long_format(path, db).samples == 0  # its span is stored now
    import_sample(corpus.SAMPLE_DIR, tmp_path / "nodes.duckdb", cluster="east")
    assert import_long_format(path, tmp_path / "nodes.duckdb", cluster="east").samples == len(rows)
    # a cluster without nodes, into a span holding another cluster's samples (the same file's)
    assert import_long_format(path, tmp_path / "nodes.duckdb", cluster="west").samples == len(rows)
    assert deferred == [(), ("cpu_cores", "memory_bytes"), (), (), ()]


def test_a_guard_stricter_than_the_gate_only_costs_a_summary(tmp_path, monkeypatch) -> None:
    """Were the write's guard to refuse a value the gate takes (here: cores above 1.0, of up to 4),
    the summary making every check finds no bad row and the file is written again without it: the
    same rows, in the clustered order."""
    monkeypatch.setattr(file_ingest, "DEFERRED_UPPER", {**file_ingest.DEFERRED_UPPER, "cpu_cores": 1.0})
    real = file_ingest.again
    why: list[bool] = []
    monkeypatch.setattr(file_ingest, "again", lambda con, source, staged, w: why.append(w.checks) or real(con, source, staged, w))
    rows = _days_rows(19, T0, 96)
    assert max(r["cpu_cores"] for r in rows) > 1.0
    db = tmp_path / "db.duckdb"
    assert import_long_format(_write(rows, tmp_path / "usage.parquet", 4_000), db).samples == len(rows)
    assert why == [True]
    stored, out_of_order = _stored(db, clustered=True)
    assert (sorted(stored), out_of_order) == (_expected(rows), (0, 0))


def test_the_cluster_keys_series_and_bounds(tmp_path) -> None:
    """A series is (cluster, namespace, pod, container) and the physical bounds are the cluster's
    nodes (schema 005): the same rows imported as two clusters are two series each; a value above
    node-1's 8 cores is refused where node-1 is known, and taken where the cluster has no nodes."""
    from capplan.importer import import_sample
    from tests.ingest import corpus

    db = tmp_path / "db.duckdb"
    import_sample(corpus.SAMPLE_DIR, db, cluster="east")
    # a pod of its own on the sample's node-1 (the sample's own pods have samples at these times)
    rows = [{**r, "pod": "imported-0"} for r in corpus.good_rows(6)]
    good = corpus.write_long(corpus.LongCase("good", lambda: rows, None, "", ""), tmp_path, "csv")
    assert import_long_format(good, db, cluster="east").samples == 6
    assert import_long_format(good, db, cluster="west").samples == 6
    assert import_long_format(good, db, cluster="west").samples == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        per_cluster = con.execute(
            "SELECT s.cluster, count(DISTINCT s.series_id), count(*) FROM series AS s JOIN usage_raw AS u USING (series_id) "
            "WHERE s.pod = 'imported-0' GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    assert per_cluster == [("east", 1, 6), ("west", 1, 6)]
    millicores = next(c for c in corpus.LONG_CASES if c.name == "millicores-as-cores")
    path = corpus.write_long(millicores, tmp_path, "csv")
    with pytest.raises(BadInputError, match="cpu_cores 250 on a 8-core node node-1: millicores written as cores"):
        import_long_format(path, db, cluster="east")
    assert import_long_format(path, db, cluster="north").samples == 6


def test_csv_times_with_and_without_offsets_and_blank_cells(tmp_path) -> None:
    """ISO 8601 text in UTC ("Z"), without an offset (read as UTC) and with an offset (converted
    to UTC), blanks around cells, and an empty request cell ("not set", not "unknown")."""
    path = tmp_path / "usage.csv"
    path.write_text(
        "namespace,pod,container,timestamp,cpu_cores,memory_bytes,cpu_request_cores\n"
        "ns,p,c,2026-11-10T12:00:00Z,0.25,1048576,\n"
        "ns,p,c, 2026-11-10T14:05:00+02:00 , 0.5 ,2Mi,250m\n"
        "ns,p,c,2026-11-10 12:10:00,1,3145728,250m\n"
        "ns,p,c,2026-11-10T07:15:00-05:00,1.5,4Mi,250m\n")
    db = tmp_path / "db.duckdb"
    assert import_long_format(path, db).samples == 4
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute("SELECT ts, cpu_mcores, memory_kib FROM usage_raw ORDER BY ts").fetchall()
        requests = con.execute("SELECT cpu_request_cores FROM containers ORDER BY valid_from").fetchall()
    finally:
        con.close()
    assert stored == [(datetime(2026, 11, 10, 12, 0), 250, 1024), (datetime(2026, 11, 10, 12, 5), 500, 2048),
                      (datetime(2026, 11, 10, 12, 10), 1000, 3072), (datetime(2026, 11, 10, 12, 15), 1500, 4096)]
    assert requests == [(None,), (0.25,)]


# --- a Parquet file written a time slice at a time (capplan.file_ingest.time_slices) -------------
# SLICE_ROWS is lowered so that these 40,000-row files are cut into slices as a 30 M-row file is.

HOUR_ROWS = CONTAINERS * 12  # an hour of 5-minute samples


def _by_hour(rows: list[dict], seed: int) -> list[dict]:
    """The rows an hour after the other, shuffled inside each hour: written in row groups of
    HOUR_ROWS, each row group holds one hour, as a file exported a day at a time holds days."""
    rng = random.Random(seed)
    chunks: dict[int, list[dict]] = {}
    for r in rows:
        chunks.setdefault(int((r["timestamp"] - T0).total_seconds()) // 3600, []).append(r)
    out = []
    for key in sorted(chunks):
        rng.shuffle(chunks[key])
        out += chunks[key]
    return out


def _slices(path: Path, lo: datetime = T0, hi: datetime = T0 + timedelta(minutes=5 * (STEPS - 1))) -> list | None:
    from capplan import file_ingest

    con = duckdb.connect()
    try:
        source = file_ingest.open_file(con, path)
        return file_ingest.time_slices(con, source, lo, hi)
    finally:
        con.close()


def test_a_file_in_time_chunks_is_written_in_slices_in_stored_order(tmp_path, monkeypatch) -> None:
    from capplan import file_ingest

    monkeypatch.setattr(file_ingest, "SLICE_ROWS", 6_000)
    rows = _by_hour(_rows(5), 6)
    path = _write(rows, tmp_path / "usage.parquet", HOUR_ROWS)
    slices = _slices(path)
    assert slices is not None and len(slices) >= 6  # the slices are really taken
    db = tmp_path / "db.duckdb"
    summary = import_long_format(path, db)
    assert (summary.samples_read, summary.samples) == (len(rows), len(rows))
    stored, out_of_order = _stored(db, clustered=False)
    assert sorted(stored) == _expected(rows)
    # slices of hours are sorted in the stored order, their span left to store.cluster_usage
    assert out_of_order == (0, 1)
    assert import_long_format(path, db).samples == 0


def test_a_file_in_container_order_is_not_sliced(tmp_path, monkeypatch) -> None:
    """Each row group of a file written container by container spans the whole time: each slice
    would read all of it."""
    from capplan import file_ingest

    monkeypatch.setattr(file_ingest, "SLICE_ROWS", 6_000)
    rows = sorted(_rows(7), key=lambda r: (r["pod"], r["timestamp"]))
    assert _slices(_write(rows, tmp_path / "usage.parquet")) is None


def test_a_clash_and_a_repeat_in_a_sliced_file(tmp_path, monkeypatch) -> None:
    """The same container and time twice, in one slice: equal values are one sample; different
    values are refused naming both lines, as without slices."""
    from capplan import file_ingest

    monkeypatch.setattr(file_ingest, "SLICE_ROWS", 6_000)
    rows = _by_hour(_rows(8), 9)
    repeated = rows[:20_000] + [rows[19_990]] + rows[20_000:]  # the row at index 19,990 again, same values
    path = _write(repeated, tmp_path / "repeat.parquet", HOUR_ROWS)
    assert _slices(path) is not None
    summary = import_long_format(path, tmp_path / "db.duckdb")
    assert (summary.samples_read, summary.samples) == (len(repeated), len(rows))

    clashing = rows[:20_000] + [{**rows[19_990], "cpu_cores": rows[19_990]["cpu_cores"] + 0.5}] + rows[20_000:]
    path = _write(clashing, tmp_path / "clash.parquet", HOUR_ROWS)
    db = tmp_path / "clash.duckdb"
    with pytest.raises(BadInputError) as refused:
        import_long_format(path, db)
    assert str(refused.value) == (
        f"{path}:{_line(20_000, '.parquet')}: cpu_cores: {clashing[20_000]['cpu_cores']:g} conflicts with line "
        f"{_line(19_990, '.parquet')} ({rows[19_990]['cpu_cores']:g}): the same container and time twice "
        "(2 bad rows; nothing was imported)")
    assert not db.exists()


# --- a file already in the stored order (capplan.file_ingest.in_order) -----------------------------

def _stored(db: Path, *, clustered: bool) -> tuple[list[tuple], tuple[int, int]]:
    """Every stored sample as (pod, ts, millicores, KiB), and _out_of_order's count for the layout."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute(f"{STORED_SAMPLES_SQL} USING (series_id)").fetchall()
        return stored, _out_of_order(con, clustered=clustered)
    finally:
        con.close()


def _expected(rows: list[dict]) -> list[tuple]:
    return sorted((r["pod"], r["timestamp"], round(r["cpu_cores"] * 1000), r["memory_bytes"] // 1024) for r in rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_sorted_by_time_and_container_lands_in_stored_order(suffix, tmp_path) -> None:
    """Sorted by time, then namespace, pod and container: the order of a new store's series ids."""
    from capplan import file_ingest

    rows = sorted(_rows(10), key=lambda r: (r["timestamp"], r["namespace"], r["pod"], r["container"]))
    path = _write(rows, tmp_path / f"usage{suffix}")
    db = tmp_path / "db.duckdb"
    summary = import_long_format(path, db)
    assert (summary.samples_read, summary.samples) == (len(rows), len(rows))
    # written as it comes (the stored order), its span left to store.cluster_usage
    stored, out_of_order = _stored(db, clustered=False)
    assert (sorted(stored), out_of_order) == (_expected(rows), (0, 1))
    con = duckdb.connect(str(db))
    try:  # the guess was right for the same file into an empty store
        source = file_ingest.open_file(con, path)
        con.execute("CREATE TEMP TABLE _import_series AS SELECT namespace, pod, container, series_id FROM series")
        assert file_ingest.in_order(con, source)
    finally:
        con.close()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_in_order_only_at_its_start_still_lands_in_stored_order(suffix, tmp_path, monkeypatch) -> None:
    """The first rows are in order, a later one is not (and one later sample is repeated): the
    guess is checked after the write, which is then done again, sorted."""
    from capplan import file_ingest

    monkeypatch.setattr(file_ingest, "IN_ORDER_PROBE_ROWS", 1_000)
    rows = sorted(_rows(11), key=lambda r: (r["timestamp"], r["namespace"], r["pod"], r["container"]))
    rows[30_000], rows[30_001] = rows[30_001], rows[30_000]
    for repeated in (rows, rows[:35_000] + [rows[20_000]] + rows[35_000:]):
        path = _write(repeated, tmp_path / f"usage{suffix}")
        db = tmp_path / f"db{len(repeated)}.duckdb"
        summary = import_long_format(path, db)
        assert (summary.samples_read, summary.samples) == (len(repeated), len(rows))
        # written again sorted: into the clustered order of its day; a repeat is staged, and the
        # staged rows are appended in the stored order (store.insert_staged_usage), their span marked
        clustered = repeated is rows
        stored, out_of_order = _stored(db, clustered=clustered)
        assert (sorted(stored), out_of_order) == (_expected(rows), (0, 0 if clustered else 1))


# --- CSV numbers parsed by DuckDB's reader, times without the offset test ------------------------
# (capplan.file_ingest._summarise_file: the reader's DOUBLE parse first, the text path on any cell it
# refuses; a file whose times carry no UTC offset is parsed with a plain cast after its summary)

ODD_CELLS = ["1.5", " 1.5", "1.5 ", "+1", "-0", "1e-3", "1E+2", ".5", "5.", "1_000", "00001", "\t1", "+-1",
             '" 2 "', '""', "", "0.1234567890123456789", "inf", "nan", "-1", "0x10", '"1,5"', "1d", "1..2", "--1",
             ".", "+", "1 2", "0b101", " ", "250m", "1Gi", "abc"]


def _text_numbers_only(monkeypatch) -> None:
    """Every CSV number read as text and cast by the import, as before the reader parsed them."""
    real_open = file_ingest.open_file

    def open_as_text(con, path):
        source = real_open(con, path)
        source.text_numbers = source.csv_numbers
        file_ingest._build_sql(source)
        return source

    monkeypatch.setattr(file_ingest, "open_file", open_as_text)


def _outcome(path: Path, db: Path) -> tuple[str, object]:
    try:
        import_long_format(path, db)
    except BadInputError as exc:
        return "refused", str(exc)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return "stored", con.execute("SELECT series_id, ts, cpu_mcores, memory_kib FROM usage_raw ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("cell", ODD_CELLS)
def test_a_csv_number_cell_reads_the_same_through_the_reader_as_through_text(cell, tmp_path, monkeypatch) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("namespace,pod,container,timestamp,cpu_cores,memory_bytes\n"
                    "ns,p,c,2026-11-10T12:00:00Z,0.25,1048576\n"
                    f"ns,p,c,2026-11-10T12:05:00Z,{cell},2097152\n"
                    f"ns,p,c,2026-11-10T12:10:00Z,0.75,{cell}\n")
    read = _outcome(path, tmp_path / "read.duckdb")
    _text_numbers_only(monkeypatch)
    assert read == _outcome(path, tmp_path / "text.duckdb")


def test_a_csv_number_cell_read_by_the_reader_is_stored_at_its_value(tmp_path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("namespace,pod,container,timestamp,cpu_cores,memory_bytes\n"
                    "ns,p,c,2026-11-10T12:00:00Z, 1.5 ,1e6\n"
                    "ns,p,c,2026-11-10T12:05:00Z,+.25,\"2048\"\n"
                    "ns,p,c,2026-11-10T12:10:00Z,,1_024\n")
    db = tmp_path / "db.duckdb"
    assert import_long_format(path, db).samples == 3
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute("SELECT ts, cpu_mcores, memory_kib FROM usage_raw ORDER BY ts").fetchall()
    finally:
        con.close()
    # 1e6 bytes = 976.5625 KiB -> 977; an empty CPU cell is unknown (NULL), not 0
    assert stored == [(datetime(2026, 11, 10, 12, 0), 1500, 977), (datetime(2026, 11, 10, 12, 5), 250, 2),
                      (datetime(2026, 11, 10, 12, 10), None, 1)]


@pytest.mark.parametrize("offset_row", [None, 0, 39_999])
def test_csv_times_with_an_offset_anywhere_or_none(offset_row, tmp_path, monkeypatch) -> None:
    """40,000 rows of times in UTC ("Z" or no suffix); with one of them written with an offset instead
    (the same instant): stored at the UTC times, whichever way the time is parsed."""
    rows = _rows(5)
    path = tmp_path / "usage.csv"
    lines = ["namespace,pod,container,timestamp,cpu_cores,memory_bytes"]
    for i, r in enumerate(rows):
        t = r["timestamp"]
        text = (f"{(t + timedelta(hours=3)):%Y-%m-%dT%H:%M:%S}+03:00" if i == offset_row
                else f"{t:%Y-%m-%dT%H:%M:%SZ}" if i % 2 else f"{t:%Y-%m-%d %H:%M:%S}")
        lines.append(f"{r['namespace']},{r['pod']},{r['container']},{text},{r['cpu_cores']},{r['memory_bytes']}")
    path.write_text("\n".join(lines) + "\n")
    seen: list[int | None] = []
    real_check = file_ingest.check_and_stage

    def check(con, source, **kwargs):
        staged = real_check(con, source, **kwargs)
        seen.append(source.offset_times)
        return staged

    monkeypatch.setattr(file_ingest, "check_and_stage", check)
    db = tmp_path / "db.duckdb"
    assert import_long_format(path, db).samples == len(rows)
    assert seen == [0 if offset_row is None else 1]
    assert sorted(_stored(db, clustered=False)[0]) == _expected(rows)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_empty_node_or_owner_text_is_no_value(suffix, tmp_path, monkeypatch) -> None:
    """Node and owner texts that are empty ('' in Parquet, a quoted "" in CSV) in a pod's first hour
    are no value, as a missing one (NULL) is: the pod's node and owner are the ones of its later
    rows, and it ran on no node in that hour. The summary, which first groups the texts as the
    file has them, is made again with empty texts read as no value; a file without one is
    summarised once (and so is the CSV: DuckDB's reader reads a quoted "" as no value itself)."""
    real = file_ingest._summarise
    summaries: list[bool | None] = []

    def summarise(con, source, checks, limit):
        summaries.append(source.empty_texts)
        return real(con, source, checks, limit)

    monkeypatch.setattr(file_ingest, "_summarise", summarise)
    stored = {}
    for empty in ("", None):
        rows = [{"namespace": "ns", "pod": pod, "container": "app", "node": node if h >= 12 else empty,
                 "owner_kind": "ReplicaSet" if h >= 12 else empty, "owner_name": f"{pod}-rs" if h >= 12 else empty,
                 "timestamp": T0 + timedelta(minutes=5 * h), "cpu_cores": 0.25, "memory_bytes": 2**20}
                for pod, node in (("pod-a", "node-1"), ("pod-b", "node-2")) for h in range(24)]
        path = tmp_path / f"usage-{empty is None}{suffix}"
        if suffix == ".csv":
            frame = pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            # polars writes an empty text as "" and a missing one as an empty cell
            frame.write_csv(path, quote_style="non_numeric" if empty == "" else "necessary")
        else:
            pl.DataFrame(rows).write_parquet(path)
        db = tmp_path / f"db-{empty is None}.duckdb"
        assert import_long_format(path, db).samples == 48
        con = duckdb.connect(str(db), read_only=True)
        try:
            stored[empty] = (
                con.execute("SELECT pod, node, owner_kind, owner_name, valid_from, valid_to FROM pods ORDER BY pod").fetchall(),
                con.execute("SELECT s.pod, n.node, n.valid_from, n.valid_to FROM series_nodes AS n "
                            "JOIN series AS s USING (series_id) ORDER BY s.pod").fetchall())
        finally:
            con.close()
    first, node_from, last = T0, T0 + timedelta(hours=1), T0 + timedelta(minutes=5 * 23)
    assert stored[""] == stored[None] == (
        [("pod-a", "node-1", "ReplicaSet", "pod-a-rs", first, last), ("pod-b", "node-2", "ReplicaSet", "pod-b-rs", first, last)],
        [("pod-a", "node-1", node_from, last), ("pod-b", "node-2", node_from, last)])
    assert summaries == ([None, True, None] if suffix == ".parquet" else [None, None])


# --- a sorted write puts each UTC day in the clustered order (schema 009) --------------------------

def _days_rows(seed: int, start: datetime, steps: int) -> list[dict]:
    """250 containers (four blocks of 64 series ids) every 30 minutes from `start`, shuffled within
    each UTC day, days in order (a Parquet row group then spans one day)."""
    rng = random.Random(seed)
    rows = [{"namespace": f"ns-{c % 7}", "pod": f"pod-{c}", "container": "app",
             "timestamp": start + timedelta(minutes=30 * s),
             "cpu_cores": rng.randint(1, 4000) / 1000, "memory_bytes": rng.randint(1, 2**20) * 1024}
            for c in range(CONTAINERS) for s in range(steps)]
    rng.shuffle(rows)
    return sorted(rows, key=lambda r: r["timestamp"].date())


def _layout(db: Path) -> tuple[dict, list[tuple]]:
    """Per UTC day, the (series_id, ts) of usage_raw in storage order; and the unclustered ranges."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        days: dict = {}
        for series_id, ts in con.execute("SELECT series_id, ts FROM usage_raw ORDER BY rowid").fetchall():
            days.setdefault(ts.date(), []).append((series_id, ts))
        return days, con.execute("SELECT lo, hi FROM usage_raw_unclustered ORDER BY lo").fetchall()
    finally:
        con.close()


def _clustered(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: (r[0] // 64, r[1], r[0]))


@pytest.mark.parametrize(("suffix", "by_time", "days", "slice_days"), [
    (".csv", False, 3, None), (".parquet", False, 3, 1), (".csv", True, 3, None), (".parquet", True, 3, 1),
    (".parquet", False, 5, 2)])
def test_a_sorted_write_puts_each_day_in_the_clustered_order(suffix, by_time, days, slice_days, tmp_path,
                                                              monkeypatch) -> None:
    """Days of samples (a Parquet file in slices of one or two days, a CSV in one sort; or either
    sorted by time and container, the stored order, which is sorted all the same over more than a
    day): every day's rows in the clustered order store.cluster_usage would put them in, none left to
    it."""
    steps = 48 * days
    monkeypatch.setattr(file_ingest, "SLICE_ROWS", CONTAINERS * steps // (3 if slice_days == 1 else 2))
    rows = _days_rows(12, T0, steps)
    if by_time:
        rows.sort(key=lambda r: (r["timestamp"], r["namespace"], r["pod"], r["container"]))
    path = _write(rows, tmp_path / f"usage{suffix}", 4_000)
    if suffix == ".parquet":
        slices = _slices(path, T0, T0 + timedelta(minutes=30 * (steps - 1)))
        assert slices is not None and {b - a for a, b in slices} == {timedelta(days=slice_days)}
    db = tmp_path / "db.duckdb"
    assert import_long_format(path, db).samples == len(rows)
    stored_days, unclustered = _layout(db)
    assert sorted(stored_days) == [T0.date() + timedelta(days=d) for d in range(days)]
    assert all(stored == _clustered(stored) for stored in stored_days.values())
    assert unclustered == []
    stored, out_of_order = _stored(db, clustered=True)
    assert (sorted(stored), out_of_order) == (_expected(rows), (0, 0))


@pytest.mark.parametrize(("suffix", "collision"), [
    (".parquet", "hash({0}namespace)"), (".csv", "hash({0}namespace)"), (".parquet", "42")])
def test_series_whose_hashes_collide_are_joined_on_their_texts(suffix, collision, tmp_path, monkeypatch) -> None:
    """The write joins rows to their series on one hash of namespace, pod and container when the
    file's 250 series have 250 distinct hashes; with a hash that collides (the namespace's alone, 7
    of them for 250 containers, or one constant for all) it joins on the three texts instead. Either
    way the same rows land, each day in the clustered order, in the same physical order (two days:
    a Parquet file in day slices, a CSV in one sort of both)."""
    monkeypatch.setattr(file_ingest, "SLICE_ROWS", CONTAINERS * 96 // 3)
    rows = _days_rows(15, T0, 96)
    path = _write(rows, tmp_path / f"usage{suffix}", 4_000)
    real = file_ingest._series_join
    joins: list[str] = []

    def series_join(con, block_lo):
        joins.append("texts" if "USING (namespace, pod, container)" in real(con, block_lo) else "hash")
        return real(con, block_lo)

    monkeypatch.setattr(file_ingest, "_series_join", series_join)
    layouts = []
    for series_hash in (file_ingest.SERIES_HASH_SQL, collision):
        monkeypatch.setattr(file_ingest, "SERIES_HASH_SQL", series_hash)
        db = tmp_path / f"db-{len(layouts)}.duckdb"
        assert import_long_format(path, db).samples == len(rows)
        stored, out_of_order = _stored(db, clustered=True)
        assert (sorted(stored), out_of_order) == (_expected(rows), (0, 0))
        days, unclustered = _layout(db)
        assert sorted(days) == [T0.date(), T0.date() + timedelta(days=1)] and unclustered == []
        assert all(stored == _clustered(stored) for stored in days.values())
        layouts.append(days)
    assert joins == ["hash", "texts"]
    assert layouts[0] == layouts[1]


@pytest.mark.parametrize(("suffix", "old_series", "key_type"), [
    (".parquet", False, "UINTEGER"), (".csv", False, "UINTEGER"), (".parquet", True, "BIGINT"), (".csv", True, "BIGINT")])
def test_the_sort_key_holds_ids_far_from_the_first_block(suffix, old_series, key_type, tmp_path, monkeypatch) -> None:
    """A file of new containers into a store of 30,000 series (their ids start at block 468), with
    or without one stored container (id 1): its days land in the clustered order with the values
    written, whether the sort key fits a UINTEGER (the file's ids span 4 blocks) or needs a BIGINT
    (470 blocks: ids 1 to 30,250; two days of them, 940 > 512)."""
    monkeypatch.setattr(file_ingest, "SLICE_ROWS", 12_000)
    db = tmp_path / "db.duckdb"
    many = tmp_path / "many.parquet"
    pl.DataFrame({"namespace": "old", "pod": [f"old-{i:05d}" for i in range(30_000)], "container": "app",
                  "timestamp": T0 - timedelta(days=3), "cpu_cores": 0.5, "memory_bytes": 2**20}).write_parquet(many)
    assert import_long_format(many, db).samples == 30_000
    rows = _days_rows(14, T0, 96)  # two days, 250 new containers
    if old_series:
        rows += [{"namespace": "old", "pod": "old-00000", "container": "app", "timestamp": T0 + timedelta(hours=h),
                  "cpu_cores": h / 1000, "memory_bytes": 2**20 + h * 1024} for h in range(48)]
        rows.sort(key=lambda r: r["timestamp"].date())
    real = file_ingest.sort_key_type
    used = []
    monkeypatch.setattr(file_ingest, "sort_key_type", lambda d, b: used.append(real(d, b)) or used[-1])
    path = _write(rows, tmp_path / f"usage{suffix}", 4_000)
    assert import_long_format(path, db).samples == len(rows)
    assert used and set(used) == {key_type}
    days, unclustered = _layout(db)
    new_days = [d for d in days if d >= T0.date()]
    assert new_days == [T0.date(), T0.date() + timedelta(days=1)] and unclustered == []
    assert all(days[d] == _clustered(days[d]) for d in new_days)
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute(f"{STORED_SAMPLES_SQL} USING (series_id) WHERE u.ts >= $t", {"t": T0}).fetchall()
        first_new = con.execute("SELECT min(series_id) FROM series WHERE namespace <> 'old'").fetchone()[0]
    finally:
        con.close()
    assert first_new == 30_001
    assert sorted(stored) == _expected(rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_day_shared_with_stored_samples_is_left_to_cluster_usage(suffix, tmp_path, monkeypatch) -> None:
    """Samples stored at 01:00 of the file's first day and at 22:00 of its last (outside its span, so
    it is still written straight into the store): those two days hold rows of two writes, so the
    file's part of them is marked; the first day is complete (later samples are stored) and
    store.cluster_usage rewrites it at the end of the import, the last stays marked."""
    monkeypatch.setattr(file_ingest, "SLICE_ROWS", 12_000)
    start = T0 + timedelta(hours=6)
    rows = _days_rows(13, start, 100)  # 06:00 on day 1 to 07:30 on day 3
    last = start + timedelta(minutes=30 * 99)
    early = tmp_path / "early.csv"
    early.write_text("namespace,pod,container,timestamp,cpu_cores,memory_bytes\n"
                     f"ns-0,pod-0,app,{T0 + timedelta(days=2, hours=22):%Y-%m-%dT%H:%M:%SZ},0.5,1048576\n"
                     f"ns-0,pod-0,app,{T0 + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ},0.5,1048576\n")
    db = tmp_path / "db.duckdb"
    # (not in time order: sorted, each of its days in the clustered order, nothing marked)
    assert import_long_format(early, db).samples == 2
    assert _layout(db)[1] == []
    path = _write(rows, tmp_path / f"usage{suffix}", 4_000)
    assert import_long_format(path, db).samples == len(rows)
    days, unclustered = _layout(db)
    day1, day2, day3 = (T0.date() + timedelta(days=d) for d in range(3))
    assert days[day1] == _clustered(days[day1]) and days[day2] == _clustered(days[day2])
    # the last day: the file's rows (its own order) after the sample stored before them
    assert days[day3][0] == (1, T0 + timedelta(days=2, hours=22))
    assert days[day3][1:] == _clustered(days[day3][1:])
    assert unclustered == [(T0 + timedelta(days=2), last)]


def test_the_sort_key_is_an_unsigned_integer_while_its_largest_value_fits() -> None:
    """The largest key over D days of B blocks is ((D * B - 1) << 23) | (86,399 << 6) | 63 (by hand:
    512 blocks give 511 * 8,388,608 + 5,529,599 = 4,292,108,287, 513 give 4,300,496,895, against
    UINTEGER's 4,294,967,295)."""
    assert [file_ingest.sort_key_type(d, b) for d, b in ((1, 512), (1, 513), (2, 256), (2, 257), (10, 1))] == [
        "UINTEGER", "BIGINT", "UINTEGER", "BIGINT", "UINTEGER"]
    assert (511 << 23) | (86_399 << 6) | 63 == 4_292_108_287 <= 2**32 - 1 < (512 << 23)


@pytest.mark.parametrize("step", ["check_and_stage", "write_staged"])
def test_out_of_memory_under_the_import_limit_runs_the_step_again_under_the_full_one(step, tmp_path,
                                                                                     monkeypatch) -> None:
    """DuckDB out of memory under the import's lower limit (IMPORT_MEMORY_LIMIT_MB) in the checks or
    in the write (whose transaction it rolls back): the step runs again under the store's limit and
    the file lands whole, once."""
    from capplan import store

    real = getattr(file_ingest, step)
    limits = []

    def once_out_of_memory(con, *args, **kwargs):
        limits.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        if len(limits) == 1:
            if step == "write_staged":  # part of the file written, then the failure
                real(con, *args, **kwargs)
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return real(con, *args, **kwargs)

    monkeypatch.delenv(store.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(file_ingest, step, once_out_of_memory)
    rows = _rows(21)
    path = _write(rows, tmp_path / "usage.csv")
    db = tmp_path / "db.duckdb"
    assert import_long_format(path, db).samples == len(rows)
    def shown(limit: str) -> str:  # a memory limit as DuckDB's current_setting shows it
        with duckdb.connect(config={"memory_limit": limit}) as other:
            return other.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    assert limits == [shown(f"{file_ingest.IMPORT_MEMORY_LIMIT_MB['csv']}MB"),
                      shown(str(store.duckdb_config()["memory_limit"]))]
    assert sorted(_stored(db, clustered=False)[0]) == _expected(rows)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_the_repeats_check_in_day_parts_counts_what_one_window_over_the_span_counts(threads, tmp_path) -> None:
    """file_ingest._repeats cuts the span into parts of whole UTC days, one per thread: it finds every
    series and time written twice in a row wherever the repeat is (first day, a part's first or
    last day, the last day), as a count of neighbours over the rows in the order written does."""
    from capplan import store

    con = store.open_db(tmp_path / "db.duckdb")
    lo = datetime(2026, 11, 3, 7, 30)  # a span starting and ending inside a UTC day
    days = 5
    rng = random.Random(threads)
    written: list[tuple[int, datetime]] = []
    for day in range(days + 1):
        start = datetime.combine((lo + timedelta(days=day)).date(), datetime.min.time())
        for minute in range(0, 1440, 240):
            ts = start + timedelta(minutes=minute)
            if lo <= ts:
                written += [(series, ts) for series in (1, 2, 3)]
    hi = written[-1][1]
    # a repeat on every day, at its first or last row, and a few more anywhere
    by_day: dict[object, list[int]] = {}
    for index, (_, ts) in enumerate(written):
        by_day.setdefault(ts.date(), []).append(index)
    chosen = {rows[0] if n % 2 else rows[-1] for n, rows in enumerate(by_day.values())}
    chosen |= set(rng.sample(range(len(written)), 4))
    for index in sorted(chosen, reverse=True):
        written.insert(index + 1, written[index])  # the same series and time again, right after itself
    con.execute("INSERT INTO usage_raw (series_id, ts, cpu_mcores, memory_kib) "
                "SELECT unnest($ids), CAST(unnest($ts) AS TIMESTAMP_S), 1, 1",
                {"ids": [w[0] for w in written], "ts": [w[1] for w in written]})
    expected = sum(1 for a, b in zip(written, written[1:], strict=False) if a == b)
    assert expected == len(chosen)
    assert file_ingest._repeats(con, lo, hi, "false", threads) == (expected, 0)
    con.close()
