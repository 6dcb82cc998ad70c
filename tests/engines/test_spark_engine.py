"""`--engine spark` equals DuckDB: every query Spark runs gives DuckDB's frame row for row on the
bundled sample's lake, and so do the commands built on them (recommend with every strategy,
nodes). Spark in local mode (`local[2]`), one session for the whole run (tests/engines/conftest.py).

Tolerance: integers, strings and timestamps exactly; floats to 1e-9 relative (Spark sums and
averages in another order than DuckDB; percentiles and maxima come out bit for bit)."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from capplan import store
from capplan.analysis.nodes import nodes_report
from capplan.analysis.nodes_overview import nodes_overview
from capplan.analysis.recommend import recommend
from capplan.analysis.strategies import STRATEGIES, StrategyParams
from capplan.analysis.strategies import vpa as vpa_strategy
from capplan.cli import app
from capplan.engines.spark import SPARK_QUERIES, SparkEngine
from capplan.errors import BadInputError

pytestmark = pytest.mark.spark
RELATIVE = 1e-9


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RELATIVE, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_rows(duck: pl.DataFrame, spark: pl.DataFrame, keys: list[str] | None = None) -> None:
    """Same columns and types, and row for row the same values (floats to RELATIVE)."""
    assert spark.schema == duck.schema
    assert spark.height == duck.height
    order = keys or [c for c, t in duck.schema.items() if not isinstance(t, pl.List)]
    left, right = duck.sort(order, nulls_last=True).rows(), spark.sort(order, nulls_last=True).rows()
    for row_d, row_s in zip(left, right, strict=True):
        assert all(_close(x, y) for x, y in zip(row_d, row_s, strict=True)), (row_d, row_s)


@pytest.fixture(scope="module")
def engine(spark, sample_lake: Path) -> SparkEngine:
    return SparkEngine(str(sample_lake), spark)


@pytest.fixture(scope="module")
def con(sample_db_readonly: Path):
    connection = store.open_db(sample_db_readonly, read_only=True)
    yield connection
    connection.close()


def _params(con) -> list[dict[str, Any]]:
    start, end = store.analysis_window(con, timedelta(days=14))
    hist = vpa_strategy.CPU_HISTOGRAM
    base = {"start": start + timedelta(days=2), "end": end - timedelta(hours=5)}
    return [base | {"cpu_q": 0.95, "parts": 1, "part": 0, "interval_s": 86400.0, "first_bucket": hist.first_bucket,
                    "ratio": hist.ratio, "num_buckets": hist.num_buckets, "half_life_s": vpa_strategy.HALF_LIFE_SECONDS},
            base | {"cpu_q": 0.5, "parts": 3, "part": 1, "interval_s": 3600.0, "first_bucket": hist.first_bucket,
                    "ratio": hist.ratio, "num_buckets": 20, "half_life_s": 3600.0}]


@pytest.mark.parametrize("name", sorted(SPARK_QUERIES))
def test_every_spark_query_gives_duckdbs_frame(name: str, con, engine: SparkEngine):
    sql = store.load_sql(name)
    for params in _params(con):
        # The relation recommend registers for the interval queries: each series' first sample.
        first = con.execute("SELECT series_id, epoch(min(ts)) AS first_s FROM usage_samples "
                            "WHERE ts BETWEEN $start AND $end GROUP BY series_id",
                            {"start": params["start"], "end": params["end"]}).pl()
        con.register("_rec_first", first.to_arrow())
        try:
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            duck = store.query(con, name, used)
            with store.using_engine(engine):
                spark_frame = store.query(con, name, used)
        finally:
            con.unregister("_rec_first")
        assert duck.height > 0
        assert_same_rows(duck, spark_frame)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_recommend_is_the_same_on_both_engines(strategy: str, con, engine: SparkEngine):
    for window in (timedelta(days=14),) + ((timedelta(days=3),) if strategy == "auto" else ()):
        duck = recommend(con, strategy, window, None, StrategyParams())
        with store.using_engine(engine):
            spark_table = recommend(con, strategy, window, None, StrategyParams())
        assert duck.height > 10
        assert_same_rows(duck, spark_table, ["namespace", "owner_kind", "owner_name", "container"])


def test_nodes_are_the_same_on_both_engines(con, engine: SparkEngine):
    for analysis in (nodes_report, nodes_overview):
        duck = analysis(con, timedelta(days=14))
        with store.using_engine(engine):
            spark_table = analysis(con, timedelta(days=14))
        assert duck.height == 8
        assert_same_rows(duck, spark_table, ["node"])


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _same_csv(a: str, b: str) -> bool:
    rows_a, rows_b = _csv(a), _csv(b)
    if len(rows_a) != len(rows_b) or not rows_a:
        return False
    for x, y in zip(rows_a, rows_b, strict=True):
        for key in x:
            try:
                if not _close(float(x[key]), float(y[key])):
                    return False
            except ValueError:
                if x[key] != y[key]:
                    return False
    return True


@pytest.mark.parametrize("command", [["recommend", "--strategy", "vpa"], ["nodes"]])
def test_the_cli_gives_the_same_csv(command: list[str], runner, spark, sample_db_readonly: Path, sample_lake: Path):
    args = [*command, "--db", str(sample_db_readonly), "-f", "csv"]
    duck = runner.invoke(app, args)
    on_spark = runner.invoke(app, [*args, "--engine", "spark", "--lake", str(sample_lake)])
    assert duck.exit_code == 0 and on_spark.exit_code == 0, on_spark.output
    assert _same_csv(duck.stdout, on_spark.stdout)
    assert not spark.sparkContext._jsc.sc().isStopped()  # the shared session was not the engine's to stop


def test_a_lake_older_than_the_database_is_refused(sample_db: Path, sample_lake: Path, spark):
    con = store.open_db(sample_db)
    with store.transaction(con):
        con.execute("DELETE FROM usage_raw WHERE ts < '2026-11-02'")
    engine = SparkEngine(str(sample_lake), spark)
    with store.using_engine(engine), pytest.raises(BadInputError, match="out of date: usage_raw has 243,422 rows there"):
        recommend(con, "simple", timedelta(days=14), None, StrategyParams())
    con.close()


def test_two_clusters_each_the_same_on_both_engines(spark, fleet_db: Path, fleet_lake: Path):
    """A store of two clusters (different data): the lake keeps them apart (cluster=east/west),
    and per cluster (store.scope, as fleet.run gives every command) Spark reads only that
    cluster's partitions and gives DuckDB's answer."""
    from capplan.analysis import fleet

    assert sorted(p.name for p in (fleet_lake / "usage_raw").iterdir()) == ["cluster=east", "cluster=west"]
    con = store.open_db(fleet_db, read_only=True)
    engine = SparkEngine(str(fleet_lake), spark)
    try:
        for analysis in (lambda c: recommend(c, "vpa", timedelta(days=14), None, StrategyParams()),
                         lambda c: nodes_overview(c, timedelta(days=14))):
            duck = fleet.run(con, None, analysis)
            with store.using_engine(engine):
                on_spark = fleet.run(con, None, analysis)
            assert [name for name, _ in duck.results] == ["east", "west"]
            for (name, frame_d), (name_s, frame_s) in zip(duck.results, on_spark.results, strict=True):
                assert name == name_s
                keys = ["node"] if "node" in frame_d.columns and "owner_name" not in frame_d.columns else \
                    ["namespace", "owner_kind", "owner_name", "container"]
                assert_same_rows(frame_d, frame_s, keys)
            assert all(frame.height > 0 for _, frame in duck.results)  # both clusters answered
    finally:
        con.close()
