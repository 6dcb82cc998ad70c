"""capplan's SQL (DuckDB's dialect, queries/*.sql) as Spark SQL, through sqlglot.

The queries are written once, for DuckDB. sqlglot carries them to Spark; where its output does
not run on Spark, or runs with another meaning, one rule here fixes it (each says why):

- `quantile_cont(x, q)` and `quantile_cont(x, [q, ...])` become `percentile(x, q)` and
  `percentile(x, array(...))`: sqlglot writes `PERCENTILE_CONT(x, q)`, which Spark 4 refuses
  (its percentile_cont takes WITHIN GROUP). Spark's `percentile` is exact, with linear
  interpolation between the closest ranks, as DuckDB's quantile_cont (and numpy's default).

Parameters stay named: DuckDB's `$name` becomes Spark's `:name`, bound by `spark.sql(args=...)`.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp


def _percentile(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.PercentileCont) and not isinstance(node.parent, exp.WithinGroup):
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
    return node


@lru_cache(maxsize=128)
def to_spark(sql: str) -> str:
    """One DuckDB statement as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.transform(_percentile).sql(dialect="spark")


@lru_cache(maxsize=128)
def parameters(sql: str) -> frozenset[str]:
    """The named parameters ($name) one DuckDB statement uses."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return frozenset(str(p.name) for p in tree.find_all(exp.Placeholder, exp.Parameter))


@lru_cache(maxsize=128)
def relations(sql: str) -> frozenset[str]:
    """The tables and views one DuckDB statement reads (its own CTEs left out; of a CREATE VIEW,
    what its SELECT reads)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if isinstance(tree, exp.Create) and tree.expression is not None:
        tree = tree.expression
    ctes = {str(c.alias) for c in tree.find_all(exp.CTE)}
    return frozenset(t.name for t in tree.find_all(exp.Table) if t.name not in ctes)


def view_body(create_view: str) -> str:
    """The SELECT of a DuckDB `CREATE VIEW name AS SELECT ...` statement, as Spark SQL."""
    tree = sqlglot.parse_one(create_view, read="duckdb")
    if not isinstance(tree, exp.Create) or tree.expression is None:
        raise ValueError(f"not a CREATE VIEW statement: {create_view[:80]}")
    return tree.expression.transform(_percentile).sql(dialect="spark")
