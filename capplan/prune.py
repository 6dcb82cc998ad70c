"""Removing rows by time and namespace (`capplan prune`): usage samples and restarts past a time,
and the spec history past it (intervals wholly beyond are removed, intervals across are cut).

One transaction; `dry_run` counts the same changes and rolls them back. Kept beside the store:
it knows the tables and nothing above them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from capplan import store

INTERVAL_TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas")


@dataclass
class PruneResult:
    """Per table: rows removed, and intervals cut at the time given."""

    table: str
    removed: int
    cut: int


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def prune(con: duckdb.DuckDBPyConnection, *, before: datetime | None = None, after: datetime | None = None,
          namespaces: list[str] | None = None, dry_run: bool = False,
          clusters: list[str] | None = None) -> list[PruneResult]:
    """Remove what lies before `before` and after `after` (either or both), in `namespaces` only
    when given (nodes are then left alone), in `clusters` only when given (else in every one)."""
    results: dict[str, PruneResult] = {}

    def note(table: str, removed: int = 0, cut: int = 0) -> None:
        entry = results.setdefault(table, PruneResult(table, 0, 0))
        entry.removed += removed
        entry.cut += cut

    ns = list(namespaces or [])
    cl = list(clusters or [])
    in_cl = " AND cluster IN (SELECT unnest($cl::VARCHAR[]))" if cl else ""
    in_ns = (" AND namespace IN (SELECT unnest($ns::VARCHAR[]))" if ns else "") + in_cl
    series_where = " AND ".join(
        ([] if not ns else ["namespace IN (SELECT unnest($ns::VARCHAR[]))"])
        + ([] if not cl else ["cluster IN (SELECT unnest($cl::VARCHAR[]))"]))
    series_in_ns = f" AND series_id IN (SELECT series_id FROM series WHERE {series_where})" if series_where else ""
    params_ns = {**({"ns": ns} if ns else {}), **({"cl": cl} if cl else {})}
    con.execute("BEGIN TRANSACTION")
    try:
        for bound, op, far, near in ((after, ">", "valid_from", "valid_to"), (before, "<", "valid_to", "valid_from")):
            if bound is None:
                continue
            p = {"t": bound, **params_ns}
            store.mark_node_usage_beyond(con, bound, op)
            note("usage_samples", _count(con.execute(f"DELETE FROM usage_raw WHERE ts {op} $t{series_in_ns}", p)))
            # summaries (capplan.rollup) by the start of their hour / day
            note("usage_hourly", _count(con.execute(f"DELETE FROM usage_hourly WHERE hour {op} $t{series_in_ns}", p)))
            note("usage_daily", _count(con.execute(f"DELETE FROM usage_daily WHERE day {op} $t{series_in_ns}", p)))
            note("restarts", _count(con.execute(f"DELETE FROM restarts WHERE ts {op} $t{in_ns}", p)))
            for table in INTERVAL_TABLES:
                if ns and table == "nodes":
                    continue
                where = in_ns if table != "nodes" else in_cl
                note(table, _count(con.execute(f"DELETE FROM {table} WHERE {far} {op} $t{where}", p)))
                note(table, cut=_count(con.execute(f"UPDATE {table} SET {near} = $t WHERE {near} {op} $t{where}", p)))
            note("series_nodes", _count(con.execute(f"DELETE FROM series_nodes WHERE {far} {op} $t{series_in_ns}", p)))
            note("series_nodes", cut=_count(con.execute(
                f"UPDATE series_nodes SET {near} = $t WHERE {near} {op} $t{series_in_ns}", p)))
            if after is not None and bound is after and not ns:
                # the collector fetches again from there
                con.execute(f"UPDATE high_water_marks SET ts = $t WHERE ts > $t{in_cl}",
                            {"t": bound, **({"cl": cl} if cl else {})})
        if results.get("usage_samples") and results["usage_samples"].removed:
            # a series whose latest node changes takes its node sums with it (schema 006)
            store.mark_series_pending(con, [int(r[0]) for r in con.execute(store.load_sql("series_moving_nodes")).fetchall()])
            note("series", _count(con.execute(store.load_sql("prune_orphan_series"))))
        if dry_run:
            con.execute("ROLLBACK")
        else:
            con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    order = ("usage_samples", "usage_hourly", "usage_daily", "series", "series_nodes", "restarts", *INTERVAL_TABLES)
    return [results[t] for t in order if t in results]
