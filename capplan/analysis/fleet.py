"""Many clusters in one store: run an analysis once per cluster, each through `store.scope`.

The one place that loops over clusters (commands, the report and the service call it). Each run
sees one cluster exactly as a database holding that cluster alone (store.scope), so for one
cluster it gives the single-cluster answer by construction. Where the store holds more than one
cluster, frames gain a leading `cluster` column (CONTRACT.md); with one stored cluster they stay
exactly as they were.

    runs = fleet.run(con, ["prod", "staging"], lambda c: nodes_overview(c, window))
    frame = runs.frame()            # cluster column first when the store holds several
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import duckdb
import polars as pl

from capplan import store
from capplan.errors import NoDataError, UsageError

T = TypeVar("T")
CLUSTER_COLUMN = "cluster"


def select(con: duckdb.DuckDBPyConnection, names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(the stored clusters, the ones to run: `names` in the order given, else all stored).
    A name the store does not hold is wrong usage (exit 2), naming the stored ones."""
    stored = store.clusters(con)
    if not names:
        return stored, stored
    chosen = list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in stored]
    if unknown and stored:
        raise UsageError(f"--cluster {unknown[0]}: no such cluster in the database; it holds "
                         f"{', '.join(stored)}")
    return stored, chosen


@dataclass
class FleetRuns(Generic[T]):
    """The result of one analysis per cluster, in the order run."""

    labelled: bool                                   # the store holds more than one cluster
    results: list[tuple[str, T]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cluster, why): no data there

    def frame(self, pick: Callable[[T], pl.DataFrame] | None = None) -> pl.DataFrame:
        """The results' frames as one: with a leading `cluster` column when labelled."""
        frames = [(name, pick(result) if pick else result) for name, result in self.results]
        if not self.labelled:
            (_, only), = frames
            assert isinstance(only, pl.DataFrame)
            return only
        parts = []
        for name, frame in frames:
            assert isinstance(frame, pl.DataFrame)
            if CLUSTER_COLUMN in frame.columns:
                raise ValueError(f"an analysis frame already has a {CLUSTER_COLUMN!r} column")
            parts.append(frame.insert_column(0, pl.Series(CLUSTER_COLUMN, [name] * frame.height, dtype=pl.Utf8)))
        return pl.concat(parts, how="diagonal_relaxed")

    def say(self, name: str, text: str) -> str:
        """A per-cluster note: led by the cluster's name when labelled (an empty note stays empty)."""
        return f"cluster {name}: {text}" if self.labelled and text else text


def run(con: duckdb.DuckDBPyConnection, names: Sequence[str] | None,
        analysis: Callable[[duckdb.DuckDBPyConnection], T]) -> FleetRuns[T]:
    """`analysis(con)` once per selected cluster (all stored when `names` is empty), each within
    `store.scope(con, cluster)`. With several clusters stored, a cluster without data for the
    question (NoDataError) is skipped and listed in `skipped`; when every one is, the first
    cluster's NoDataError is raised. With one stored cluster (or none) errors pass as they are."""
    stored, chosen = select(con, names)
    labelled = len(stored) > 1
    if not stored:  # an empty database: the analysis says what is missing
        return FleetRuns(False, [("", analysis(con))])
    runs: FleetRuns[T] = FleetRuns(labelled, [])
    first_error: NoDataError | None = None
    for name in chosen:
        with store.scope(con, name):
            try:
                runs.results.append((name, analysis(con)))
            except NoDataError as exc:
                if not labelled:
                    raise
                runs.skipped.append((name, str(exc)))
                first_error = first_error or exc
    if not runs.results:
        assert first_error is not None
        raise NoDataError(f"cluster {runs.skipped[0][0]}: {first_error}")
    return runs
