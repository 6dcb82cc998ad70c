"""`capplan eviction`: QoS classes, oom_score_adj and the kubelet's memory-pressure eviction order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from capplan import options as checked
from capplan.cli import app
from capplan.cli.common import (
    ClusterOption,
    DbOption,
    EndOption,
    FormatOption,
    NamespaceOption,
    NodeOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    fleet_run,
    handle_errors,
    option_value,
    window_option,
)

if TYPE_CHECKING:
    from capplan.analysis.eviction import PriorityMap

# capplan.analysis.eviction's defaults, restated so `capplan --help` need not import the analysis
# (polars, DuckDB); tests/test_cli_lazy.py checks they stay equal.
USAGE_BASES = ("peak", "p95", "latest")
DEFAULT_EVICTION_HARD = "100Mi"
DEFAULT_EVICTION_SOFT = "10%"
# A terminal table cannot hold every column: CONTRACT columns and the relief mark.
TABLE_POD_COLUMNS = ["node", "rank", "namespace", "pod", "qos_class", "priority", "memory_request_bytes",
                     "memory_usage_bytes", "exceeds_request", "oom_score_adj", "cumulative_freed_bytes",
                     "evicted_to_relieve", "evicted_share", "oom_kills"]
TABLE_NODE_COLUMNS = ["node", "memory_capacity_bytes", "worst_moment", "available_at_worst_bytes", "peak_usage_ratio",
                      "under_pressure", "share_under_hard", "share_under_soft", "evictions_to_relieve"]


def _priorities(load: Callable[..., PriorityMap], file: Path | None, overrides: list[str] | None) -> PriorityMap:
    """The --priority-classes file's content (wrong content: exit 4), then the --priority NAME=VALUE
    overrides (a value that makes no sense: exit 2)."""
    result = load(file, None)
    result.values.update(option_value("--priority", load, None, overrides).values)
    return result


@app.command()
@handle_errors
def eviction(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    node: NodeOption = None,
    usage: Annotated[str, typer.Option(
        "--usage", metavar="[peak|p95|latest]", help="Pod usage to rank by: peak (at the node's worst moment), p95 or latest.")] = "peak",
    eviction_hard: Annotated[str, typer.Option(
        "--eviction-hard", help="Hard threshold on memory.available: a quantity (100Mi) or % of capacity.")
    ] = DEFAULT_EVICTION_HARD,
    eviction_soft: Annotated[str, typer.Option(
        "--eviction-soft", help="Soft margin on memory.available for the exposure share (quantity or %).")
    ] = DEFAULT_EVICTION_SOFT,
    priority_classes: Annotated[Path | None, typer.Option(
        "--priority-classes", help="JSON of `kubectl get priorityclasses -o json`.")] = None,
    priority: Annotated[list[str] | None, typer.Option(
        "--priority", help="NAME=VALUE priority of a PriorityClass (repeatable; wins over the file).")] = None,
    view: Annotated[str, typer.Option(
        "--view", metavar="[pods|nodes|containers|qos|advice]", help="pods (ranked per node), nodes (exposure), containers (oom_score_adj), qos (every pod) or advice.")] = "pods",
) -> None:
    """QoS classes and the kubelet's memory-pressure eviction order, per node."""
    import polars as pl

    from capplan import render, store
    from capplan.analysis.eviction import EvictionOptions, check_threshold, eviction_report, load_priority_map
    from capplan.analysis.eviction.model import EvictionResult
    from capplan.report.eviction import node_note, priority_warning

    check_format(fmt)
    checked.eviction_view(view)
    checked.eviction_usage(usage)
    options = EvictionOptions(
        window=window_option(window), usage=usage, eviction_hard=option_value("--eviction-hard", check_threshold, eviction_hard),
        eviction_soft=option_value("--eviction-soft", check_threshold, eviction_soft),
        priorities=_priorities(load_priority_map, priority_classes, priority),
        namespaces=namespace or [], nodes=node or [],
    )
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        runs = fleet_run(con, cluster, lambda c: eviction_report(c, options))

    def shown_frame(result: EvictionResult) -> pl.DataFrame:
        frame = {"pods": result.pods, "nodes": result.nodes, "containers": result.containers, "qos": result.qos,
                 "advice": result.advice}[view]
        if fmt == "table" and view == "pods":
            frame = frame.select(TABLE_POD_COLUMNS)
        elif fmt == "table" and view == "nodes":
            frame = frame.select(TABLE_NODE_COLUMNS)
        return frame

    render.emit(runs.frame(shown_frame), fmt, output, title=f"Eviction: {view}")
    shown = fmt == "table" and not output and view in ("pods", "nodes")  # the table's note names them
    for name, result in runs.results:
        if shown:
            render.note(runs.say(name, node_note(result)))
            if result.unresolved_priority_classes:
                render.note(runs.say(name, priority_warning(result.unresolved_priority_classes)))
    for name, result in runs.results:
        if result.unresolved_priority_classes and not shown:  # after the output: a failed write stays one line
            typer.echo(f"capplan: warning: {runs.say(name, priority_warning(result.unresolved_priority_classes))}",
                       err=True)
