"""`capplan whatif`: nodes that could be given back after right-sizing, and node-pool sizing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    ClusterOption,
    DbOption,
    EndOption,
    FormatOption,
    NamespaceOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    fleet_run,
    handle_errors,
    window_option,
)
from capplan.errors import UsageError

VIEWS = ("pools", "nodes", "moves")


@app.command()
@handle_errors
def whatif(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    apply: Annotated[str, typer.Option(
        "--apply", metavar="[current|auto|simple|vpa|max-target]", help="Requests to assume: `current`, or a recommend strategy (auto, simple, vpa, max-target).")] = "auto",
    pool: Annotated[str | None, typer.Option(
        "--pool", help="Node label naming pools (default: the first well-known pool or instance-type label).")] = None,
    prices: Annotated[Path | None, typer.Option(
        "--prices", help="CSV instance_type,price_per_hour (e.g. data/cloud/prices.csv): savings per month.")] = None,
    shapes: Annotated[str | None, typer.Option(
        "--shapes", help="Comma-separated node shapes to size one pool for, e.g. m5.xlarge,m5.2xlarge.")] = None,
    shapes_file: Annotated[Path | None, typer.Option(
        "--shapes-file", help="CSV of shapes: shape,cpu_capacity_cores,memory_capacity_bytes,pods_capacity[,...]; "
                "without --shapes, size for every shape in it.")] = None,
    view: Annotated[str, typer.Option("--view", metavar="[pools|nodes|moves]", help="pools (default), nodes, or moves (pods that would move).")] = "pools",
) -> None:
    """How many nodes of each pool could be drained if requests were right-sized (or as they are),
    which ones, whether N-1 and memory pressure still hold after, and what it saves; with
    `--shapes`, how many nodes of each shape the pods need."""
    from capplan import render, store
    from capplan.analysis.sizing import read_prices
    from capplan.analysis.whatif import WHATIF_COLUMNS, WhatIfOptions
    from capplan.analysis.whatif import whatif as run_whatif
    from capplan.report.whatif import whatif_note

    check_format(fmt)
    if view not in VIEWS:
        raise UsageError(f"--view must be one of {', '.join(VIEWS)}, not {view!r}")
    shape_names = [s.strip() for s in shapes.split(",") if s.strip()] if shapes is not None else None
    if shapes is not None and not shape_names:
        raise UsageError("--shapes needs at least one shape name")
    if shapes_file is not None and shape_names is None:
        from capplan.analysis.sizing import read_shapes

        shape_names = list(read_shapes(shapes_file))  # every shape of the file
    options = WhatIfOptions(
        apply=apply, window=window_option(window), pool_label=pool, namespaces=namespace,
        prices=read_prices(str(prices)) if prices else None, shapes=shape_names, shapes_file=shapes_file,
    )
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        runs = fleet_run(con, cluster, lambda c: run_whatif(c, options))
    first = runs.results[0][1]
    if first.sizing is not None:
        sized = runs.frame(lambda r: r.sizing if r.sizing is not None else r.pools.clear())
        render.emit(sized, fmt, output, title=f"Node-pool sizing ({first.apply} requests)")
        return
    if view == "nodes":
        frame, title = runs.frame(lambda r: r.nodes), "What-if: nodes"
    elif view == "moves":
        frame, title = runs.frame(lambda r: r.moves), "What-if: pods that would move"
    else:
        frame = runs.frame(lambda r: r.pools.select(WHATIF_COLUMNS + ["removable_nodes"]) if fmt == "table" else r.pools)
        title = f"Nodes you could give back ({first.apply} requests)"
    render.emit(frame, fmt, output, title=title)
    if fmt == "table" and not output:
        for name, result in runs.results:
            render.note(runs.say(name, whatif_note(result)))
