"""capplan.engines.transpile: the DuckDB queries as Spark SQL (run for real on Spark in
test_spark_engine.py; here the rewriting rules and the parsing of parameters and relations)."""

from __future__ import annotations

from capplan import store
from capplan.engines import transpile


def test_quantile_cont_becomes_sparks_exact_percentile():
    sql = "SELECT quantile_cont(x, 0.95) AS a, quantile_cont(x, [$q, 0.5]) AS b FROM t WHERE ts BETWEEN $start AND $end"
    assert transpile.to_spark(sql) == ("SELECT PERCENTILE(x, 0.95) AS a, PERCENTILE(x, ARRAY(:q, 0.5)) AS b "
                                       "FROM t WHERE ts BETWEEN :start AND :end")


def test_parameters_and_relations_of_the_queries():
    sql = store.load_sql("node_usage_percentiles")
    assert transpile.parameters(sql) == {"start", "end"}
    assert transpile.relations(sql) == {"usage_samples", "series"}  # its CTE per_ts is no relation
    assert transpile.relations(store.load_sql("recommend_daily_stats")) == {"usage_samples", "_rec_first"}


def test_the_store_view_body():
    view = "CREATE VIEW v AS SELECT series_id, CAST(ts AS TIMESTAMP) AS ts FROM usage_raw"
    assert transpile.view_body(view) == "SELECT series_id, CAST(ts AS TIMESTAMP_NTZ) AS ts FROM usage_raw"
    assert transpile.relations(view) == {"usage_raw"}  # not the view itself
