"""`capplan nodes`, `capplan namespaces`, `capplan fit`, `capplan cluster`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan import options as checked
from capplan.cli import app
from capplan.cli.common import (
    ClusterOption,
    DbOption,
    EndOption,
    EngineOption,
    FormatOption,
    LakeOption,
    NamespaceOption,
    NodeOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    engine_scope,
    fleet_run,
    handle_errors,
    window_option,
)

# The analyses (polars, DuckDB) are imported inside each command, so `capplan --help` stays fast.

# A terminal cannot show every column; CSV and JSON carry them all.
# Most telling first: a narrow terminal leaves out columns from the right (`-o wide` shows all).
TABLE_NODE_COLUMNS = [
    "node", "cpu_request_ratio", "memory_request_ratio", "memory_pressure_day_probability", "utilization_class",
    "cpu_usage_p95_cores", "memory_usage_p95_bytes", "cpu_headroom_cores", "memory_headroom_bytes",
    "memory_physical_headroom_bytes", "cpu_allocatable_cores", "cpu_requests_cores", "memory_allocatable_bytes",
    "memory_requests_bytes", "pods", "memory_unlimited_containers", "reserved_ok",
]
TABLE_NAMESPACE_COLUMNS = [
    "namespace", "pods", "cpu_requests_cores", "cpu_limits_cores", "cpu_usage_p95_cores", "cpu_usage_request_ratio",
    "memory_requests_bytes", "memory_limits_bytes", "memory_usage_p95_bytes", "memory_usage_request_ratio",
    "quota_cpu_requests_cores", "quota_cpu_requests_used_ratio", "quota_memory_requests_bytes",
    "quota_memory_requests_used_ratio", "quota_pods", "quota_pods_used_ratio",
]
TABLE_FIT_COLUMNS = ["node", "fits", "limited_by", "fits_by_cpu", "fits_by_memory", "fits_by_pods",
                     "cpu_free_cores", "memory_free_bytes", "pods_free", "excluded_by", "placed", "quota_fits",
                     "quota_limited_by"]

LowOption = Annotated[float, typer.Option(
    "--low", help="Descheduler LowNodeUtilization thresholds: a node is `under` when cpu, memory and pods "
                  "requested are all at or below this percent of allocatable.")]
HighOption = Annotated[float, typer.Option(
    "--high", help="targetThresholds: a node is `over` when any of cpu, memory, pods requested is above this percent.")]


def _for_table(frame, columns: list[str], fmt: str):
    return frame.select([c for c in ["cluster", *columns] if c in frame.columns]) if fmt == "table" else frame


@app.command()
@handle_errors
def nodes(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    node: NodeOption = None,
    low: LowOption = 20.0,
    high: HighOption = 50.0,
    engine: EngineOption = "duckdb",
    lake: LakeOption = None,
) -> None:
    """Per-node overcommit and headroom: requests, limits and usage against allocatable, risk."""
    from capplan import render, store
    from capplan.analysis.nodes_overview import nodes_overview
    from capplan.engines import check_engine

    check_format(fmt)
    check_engine(engine, lake)
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        with engine_scope(engine, lake):
            table = fleet_run(con, cluster, lambda c: nodes_overview(c, window_option(window), node, low, high)).frame()
    render.emit(_for_table(table, TABLE_NODE_COLUMNS, fmt), fmt, output, title="Nodes")


@app.command()
@handle_errors
def namespaces(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
) -> None:
    """Per-namespace requests, limits, usage p95 and their ratio, with ResourceQuota hard values."""
    from capplan import render, store
    from capplan.analysis.namespaces import namespaces_report

    check_format(fmt)
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        table = fleet_run(con, cluster, lambda c: namespaces_report(c, window_option(window), namespace)).frame()
    render.emit(_for_table(table, TABLE_NAMESPACE_COLUMNS, fmt), fmt, output, title="Namespaces")


@app.command()
@handle_errors
def fit(
    cpu: Annotated[str | None, typer.Option("--cpu", help="CPU request of one pod (500m, 2).")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory request of one pod (512Mi, 1Gi).")] = None,
    replicas: Annotated[int | None, typer.Option(
        "--replicas", help="Say whether N such pods fit, and where (first-fit, nodes in name order).")] = None,
    tolerate: Annotated[list[str] | None, typer.Option(
        "--tolerate", help="Tolerate a NoSchedule/NoExecute taint: KEY, KEY=VALUE, KEY[=VALUE]:EFFECT or * (repeatable).")
    ] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="Also say how many the namespace's ResourceQuota admits (TOTAL row).")] = None,
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    node: NodeOption = None,
) -> None:
    """How many more pods of the shape --cpu/--memory fit, per node and in total."""
    from capplan import render, store
    from capplan.analysis.fit import fit_report, fit_summary
    from capplan.analysis.taints import parse_toleration

    check_format(fmt)
    cpu_cores, memory_bytes = checked.pod_shape(cpu, memory)
    checked.replicas(replicas)
    tolerations = [parse_toleration(t) for t in tolerate or []]
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        runs = fleet_run(con, cluster, lambda c: fit_report(
            c, cpu_cores, memory_bytes, tolerations=tolerations, replicas=replicas, window=window_option(window),
            nodes=node, namespace=namespace))
    render.emit(_for_table(runs.frame(), TABLE_FIT_COLUMNS, fmt), fmt, output, title="Fit")
    if replicas is not None:
        for name, table in runs.results:
            typer.echo(runs.say(name, fit_summary(table, replicas)), err=True)


@app.command()
@handle_errors
def cluster(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
) -> None:
    """Cluster totals per resource, and whether requests still fit after losing the largest node (N-1)."""
    from capplan import render, store
    from capplan.analysis.n_minus_1 import cluster_report

    check_format(fmt)
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        table = fleet_run(con, cluster, lambda c: cluster_report(c, window_option(window))).frame()
    render.emit(table, fmt, output, title="Cluster")
