"""The analyses' results for one report, each computed once and shared by the sections and the
"Act on these" list (an analysis with nothing to say for this store gives None)."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

import duckdb
import polars as pl

from capplan import store
from capplan.analysis.eviction import EvictionOptions, EvictionResult, eviction_report
from capplan.analysis.forecast import (
    DEFAULT_HORIZON,
    forecast_with_daily,
    in_report_order,
    load_forecast_inputs,
    only_namespaces,
)
from capplan.analysis.namespaces import namespaces_report
from capplan.analysis.nodes import NodeInputs, load_node_inputs, node_overcommit
from capplan.analysis.recommend import recommend
from capplan.analysis.rollout import rollout_report
from capplan.analysis.strategies import DEFAULT_STRATEGY
from capplan.analysis.whatif import WhatIfOptions, WhatIfResult, whatif
from capplan.errors import NoDataError
from capplan.report.model import ReportOptions

# The order compute_all runs the analyses in, and why: each leaves memory behind that the next
# cannot use (DuckDB's, polars' and numpy's allocators keep what they freed), so the one whose own
# peak is highest runs first, on the least. Bench L (30 days, 86.5 M samples), in-process, peak RSS:
# the sections' order (eviction, forecast, rollout, recommendations, whatif, node inputs) 778-840
# MiB; recommendations, node inputs, whatif, eviction, forecast, rollout with release_memory between
# 534 MiB; node inputs first 586, recommendations first but node inputs third 577 (load 5-12).
COMPUTE_ORDER = ("recommendations", "node_inputs", "whatif", "namespaces", "eviction", "forecast_with_daily", "rollout")


class ReportResults:
    """The store and the options of one report, and the results of its analyses."""

    def __init__(self, con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None) -> None:
        self.con = con
        self.options = options or ReportOptions()

    def compute_all(self) -> None:
        """Every analysis the sections read, in COMPUTE_ORDER, with what DuckDB holds given back
        after each (store.release_memory). One that fails is left for its section to run again and
        raise, where and as it would have without this."""
        for name in COMPUTE_ORDER:
            try:
                getattr(self, name)
            except Exception:  # the section that reads it runs it again and raises (nothing cached)
                pass
            finally:
                store.release_memory(self.con)

    @cached_property
    def node_inputs(self) -> NodeInputs:
        """The nodes and pods at the window's end, the node usage percentiles and each node's daily
        memory maxima: read once for the summary, the cluster, node and capacity sections."""
        return load_node_inputs(self.con, self.options.window, with_daily=True)

    @cached_property
    def nodes(self) -> pl.DataFrame:
        """The per-node table (capplan nodes' columns, as nodes_report gives them), for the summary
        and the cluster sections."""
        inputs = self.node_inputs
        table = node_overcommit(inputs.nodes, inputs.pods, inputs.usage)
        return table.filter(pl.col("node").is_in(self.options.nodes)) if self.options.nodes else table

    @cached_property
    def namespaces(self) -> pl.DataFrame:
        """`capplan namespaces` over the report's window (every namespace: the section filters)."""
        return namespaces_report(self.con, self.options.window)

    @cached_property
    def eviction(self) -> EvictionResult | None:
        """None without memory usage on a known node (nothing to rank)."""
        o = self.options
        try:
            return eviction_report(self.con, EvictionOptions(window=o.window, namespaces=list(o.namespaces),
                                                             nodes=list(o.nodes)))
        except NoDataError:
            return None

    @cached_property
    def recommendations(self) -> pl.DataFrame:
        return recommend(self.con, DEFAULT_STRATEGY, self.options.window, self.options.namespaces or None)

    @cached_property
    def forecast_with_daily(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The daily series the forecast fits and its table (every scope, forecast_series' order),
        at the defaults of `capplan forecast`: the forecast section and the HTML page's charts."""
        inputs = load_forecast_inputs(self.con, self.options.window)
        return forecast_with_daily(inputs, DEFAULT_HORIZON / timedelta(days=1))

    @cached_property
    def forecast(self) -> pl.DataFrame:
        """What forecast_report gives with --namespace as the report's."""
        return only_namespaces(in_report_order(self.forecast_with_daily[1]), self.options.namespaces or None)

    @cached_property
    def rollout(self) -> pl.DataFrame:
        return rollout_report(self.con, self.options.window, self.options.namespaces or None)

    @cached_property
    def whatif(self) -> WhatIfResult:
        """Consolidation after applying the recommendations above."""
        o = self.options
        return whatif(self.con, WhatIfOptions(apply=DEFAULT_STRATEGY, window=o.window, namespaces=o.namespaces or None,
                                              recommendations=self.recommendations))
