"""The analysis endpoints: `/api/v1/NAME` for each analysis, an explicit list.

Each endpoint calls the library function its CLI command calls (imported by name: a renamed
function breaks the import, and every test, instead of turning into a silent gap) and answers
with the command's CSV columns as JSON keys (`render.to_records`). ENDPOINTS is the list the app
routes, the docs describe and /metrics reads; `NOT_SERVED` names every CLI command that has no
endpoint, and why. A test checks that the two together cover every CLI command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from capplan import options, render
from capplan.analysis.eviction import (
    DEFAULT_EVICTION_HARD,
    DEFAULT_EVICTION_SOFT,
    USAGE_BASES,
    EvictionOptions,
    check_threshold,
    eviction_report,
    load_priority_map,
)
from capplan.analysis.fit import fit_report
from capplan.analysis.forecast import DEFAULT_HORIZON, DEFAULT_MIN_DAYS, DEFAULT_POOL_LABEL, forecast_report
from capplan.analysis.n_minus_1 import cluster_report
from capplan.analysis.namespaces import namespaces_report
from capplan.analysis.nodes_overview import nodes_overview
from capplan.analysis.recommend import recommend
from capplan.analysis.rollout import rollout_report
from capplan.analysis.strategies import DEFAULT_STRATEGY
from capplan.analysis.taints import parse_toleration
from capplan.analysis.whatif import WhatIfOptions, whatif
from capplan.errors import UsageError
from capplan.serve.query import Param

API_PREFIX = "/api/v1"

Call = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], pl.DataFrame]


@dataclass(frozen=True)
class Endpoint:
    """One `/api/v1/NAME`: the CLI command it mirrors, the analysis it calls, its parameters."""

    name: str
    command: str
    analysis: Callable[..., Any]
    params: tuple[Param, ...]
    call: Call
    doc: str

    @property
    def path(self) -> str:
        """The URL path."""
        return f"{API_PREFIX}/{self.name}"

    @property
    def query_params(self) -> tuple[Param, ...]:
        """The parameters a request may give: the analysis' own, and `cluster`."""
        return (*self.params, CLUSTER)


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """`render.to_records`, with DuckDB's exact decimals (a sum of BIGINTs) as plain numbers."""
    out = render.to_records(frame)
    for row in out:
        for key, value in row.items():
            if isinstance(value, Decimal):
                row[key] = int(value) if value == value.to_integral_value() else float(value)
    return out


# Parameters several endpoints share. `window` defaults to the server's --window (None here).
WINDOW = Param("window", "duration", "History window ending at the newest sample (default: the server's --window).")
NODE = Param("node", "list", "Only these nodes (repeatable or comma-separated).")
NAMESPACE = Param("namespace", "list", "Only these namespaces (repeatable or comma-separated).")
# Every endpoint: one database holds many clusters (capplan.analysis.fleet); with more than one
# stored, each record carries its `cluster`.
CLUSTER = Param("cluster", "list", "Only these clusters (repeatable or comma-separated; default all). With more "
                "than one stored, each record has a `cluster` key.")


def _nodes(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    return nodes_overview(con, q["window"], q["node"] or None, q["low"], q["high"])


def _cluster(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    return cluster_report(con, q["window"])


def _namespaces(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    return namespaces_report(con, q["window"], q["namespace"] or None)


def _fit(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    cores, memory_bytes = options.pod_shape(q["cpu"], q["memory"], options.api_spelling)
    return fit_report(con, cores, memory_bytes, tolerations=[parse_toleration(t) for t in q["tolerate"]],
                      replicas=options.replicas(q["replicas"], options.api_spelling), window=q["window"],
                      nodes=q["node"] or None)


def _eviction(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    eviction_options = EvictionOptions(
        window=q["window"], usage=options.eviction_usage(q["usage"], options.api_spelling),
        eviction_hard=check_threshold(q["eviction_hard"]), eviction_soft=check_threshold(q["eviction_soft"]),
        # PriorityClass values by NAME=VALUE only: the service reads no file a client names.
        priorities=load_priority_map(None, q["priority"] or None),
        namespaces=q["namespace"], nodes=q["node"],
    )
    result = eviction_report(con, eviction_options)
    frames: dict[str, pl.DataFrame] = {"pods": result.pods, "nodes": result.nodes, "containers": result.containers,
                                       "qos": result.qos, "advice": result.advice}
    return frames[options.eviction_view(q["view"], options.api_spelling)]


def _recommendations(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    spell = options.api_spelling
    strategy = options.strategy(q["strategy"], spell)
    params = options.strategy_params(
        cpu_percentile=q["cpu_percentile"], memory_buffer=q["memory_buffer"],
        target_utilization=q["target_utilization"], min_history=q["min_history"], horizon=q["horizon"],
        allow_hpa=q["allow_hpa"], risk=q["risk"], spell=spell)
    return recommend(con, strategy, q["window"], q["namespace"] or None, params,
                     options.cost(q["cpu_cost"], "cpu_cost", spell), options.cost(q["memory_cost"], "memory_cost", spell))


def _forecast(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    if q["min_days"] < 0:
        raise UsageError("min_days must be at least 0")
    return forecast_report(con, q["window"], horizon=q["horizon"], namespaces=q["namespace"] or None,
                           pool_label=q["pool_label"], min_days=q["min_days"])


WHATIF_VIEWS = ("pools", "nodes", "moves")


def _whatif(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    if q["apply"] != "current":
        options.strategy(q["apply"], options.api_spelling)
    # Prices and shape files are files: the service reads no file a client names.
    result = whatif(con, WhatIfOptions(apply=q["apply"], window=q["window"], pool_label=q["pool"],
                                       namespaces=q["namespace"] or None, shapes=q["shapes"] or None))
    if result.sizing is not None:
        return result.sizing
    frames: dict[str, pl.DataFrame] = {"pools": result.pools, "nodes": result.nodes, "moves": result.moves}
    return frames[q["view"]]


def _rollout(con: duckdb.DuckDBPyConnection, q: dict[str, Any]) -> pl.DataFrame:
    return rollout_report(con, q["window"], q["namespace"] or None)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("nodes", "nodes", nodes_overview, (
        WINDOW, NODE,
        Param("low", "number", "Percent of allocatable at or below which a node is `under`.", 20.0),
        Param("high", "number", "Percent of allocatable above which a node is `over`.", 50.0),
    ), _nodes, "Per-node overcommit and headroom (`capplan nodes`)."),
    Endpoint("cluster", "cluster", cluster_report, (WINDOW,), _cluster,
             "Cluster totals and the N-1 check (`capplan cluster`)."),
    Endpoint("namespaces", "namespaces", namespaces_report, (WINDOW, NAMESPACE), _namespaces,
             "Per-namespace requests, limits, usage and quota (`capplan namespaces`)."),
    Endpoint("fit", "fit", fit_report, (
        Param("cpu", "string", "CPU request of one pod (500m, 2)."),
        Param("memory", "string", "Memory request of one pod (512Mi, 1Gi)."),
        Param("replicas", "integer", "Say whether N such pods fit, and where."),
        Param("tolerate", "list", "Tolerated taints: KEY, KEY=VALUE, KEY[=VALUE]:EFFECT or *."),
        WINDOW, NODE,
    ), _fit, "How many more pods of a shape fit, per node and in total (`capplan fit`)."),
    Endpoint("eviction", "eviction", eviction_report, (
        WINDOW, NODE, NAMESPACE,
        Param("view", "string", "Which table.", "pods", options.EVICTION_VIEWS),
        Param("usage", "string", "Pod usage to rank by.", "peak", USAGE_BASES),
        Param("eviction_hard", "string", "Hard threshold on memory.available (quantity or %).", DEFAULT_EVICTION_HARD),
        Param("eviction_soft", "string", "Soft margin on memory.available (quantity or %).", DEFAULT_EVICTION_SOFT),
        Param("priority", "list", "NAME=VALUE priority of a PriorityClass."),
    ), _eviction, "QoS classes and the kubelet's memory-pressure eviction order (`capplan eviction`)."),
    Endpoint("recommendations", "recommend", recommend, (
        WINDOW, NAMESPACE,
        Param("strategy", "string", "Recommendation strategy.", DEFAULT_STRATEGY),
        Param("cpu_percentile", "number", "simple: per-pod CPU percentile.", 95.0),
        Param("memory_buffer", "number", "simple: percent added to the peak memory.", 15.0),
        Param("target_utilization", "number", "max-target: max usage / this.", 0.7),
        Param("min_history", "duration", "Less history than this: no recommendation.", timedelta(days=1)),
        Param("horizon", "duration", "auto: how far ahead a size must hold.", timedelta(days=7)),
        Param("allow_hpa", "bool", "Change requests an HPA scales on.", False),
        Param("risk", "string", "auto: risk level, low | medium | high (docs/recommend.md); default low."),
        Param("cpu_cost", "number", "Cost of one core per hour."),
        Param("memory_cost", "number", "Cost of one GiB per hour."),
    ), _recommendations, "Right-sizing per container (`capplan recommend`)."),
    Endpoint("forecast", "forecast", forecast_report, (
        WINDOW,
        Param("horizon", "duration", "How far ahead to look.", DEFAULT_HORIZON),
        NAMESPACE,
        Param("pool_label", "string", "The node label that names a node's pool.", DEFAULT_POOL_LABEL),
        Param("min_days", "integer", "Fewest days of history to project from.", DEFAULT_MIN_DAYS),
    ), _forecast, "Growth trend and days until exhaustion (`capplan forecast`)."),
    Endpoint("rollout", "rollout", rollout_report, (WINDOW, NAMESPACE), _rollout,
             "Rollout headroom per Deployment (`capplan rollout`)."),
    Endpoint("whatif", "whatif", whatif, (
        WINDOW, NAMESPACE,
        Param("apply", "string", "Requests to assume: `current`, or a recommend strategy.", "auto"),
        Param("pool", "string", "Node label naming pools (default: the first well-known pool label)."),
        Param("shapes", "list", "Node shapes to size one pool for (answers the sizing table)."),
        Param("view", "string", "Which table (without shapes).", "pools", WHATIF_VIEWS),
    ), _whatif, "Nodes that could be given back after right-sizing, and node-pool sizing (`capplan whatif`; "
                "prices and shape files only on the command line)."),
)

# CLI commands without an endpoint, and why. Every other command must have one (tested).
NOT_SERVED: dict[str, str] = {
    "collect": "writes the store; the service only reads (scheduled collection: --collect-every)",
    "import": "writes the store from local files",
    "prune": "deletes rows from the store; the service only reads",
    "serve": "is the service",
    "report": "served whole as /api/v1/report and /report.html",
    "backtest": "refits every strategy over the history (minutes at scale): run it as a job, not per request",
    "patch": "rewrites manifest files named on the command line; the service reads no file a client names",
    "check": "judges manifest files named on the command line (a CI gate); the service reads no file a client names",
    "export-lake": "writes a Parquet copy of the store to a folder on this machine (a batch job after collection, "
                   "for --engine spark); the service writes no file",
    "resize-plan": "writes the kubectl commands that act on the cluster (the command assembles them from "
                   "capplan.act); an operator's step, not a dashboard's",
}
