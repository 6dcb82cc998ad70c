"""`capplan forecast` (days until exhaustion) and `capplan rollout` (rollout headroom)."""

from __future__ import annotations

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

# capplan.analysis.forecast's defaults, restated so `capplan --help` need not import the analysis
# (scipy, polars); tests/test_cli_lazy.py checks they stay equal.
DEFAULT_MIN_DAYS = 7
DEFAULT_POOL_LABEL = "node.kubernetes.io/instance-type"


@app.command()
@handle_errors
def forecast(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    horizon: Annotated[str, typer.Option(
        "--horizon", help="How far ahead to look; a crossing later than this is `never`.")] = "90d",
    min_days: Annotated[int, typer.Option(
        "--min-days", help="Fewest days of history to project from (fewer: `too_short`).")] = DEFAULT_MIN_DAYS,
    pool_label: Annotated[str, typer.Option(
        "--pool-label", help="The node label that names a node's pool.")] = DEFAULT_POOL_LABEL,
) -> None:
    """Growth trend and days until exhaustion, per cluster, node pool and namespace, for cpu and
    memory, on requests and on usage (daily p95)."""
    from capplan import render, store
    from capplan.analysis.forecast import forecast_report
    from capplan.report.forecast import csv_view, forecast_note, table_view

    check_format(fmt)
    horizon_delta = window_option(horizon, "--horizon")
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        runs = fleet_run(con, cluster, lambda c: forecast_report(
            c, window_option(window), horizon=horizon_delta, namespaces=namespace, pool_label=pool_label,
            min_days=min_days))
    shown = runs.frame({"table": table_view, "csv": csv_view}.get(fmt, lambda t: t))
    render.emit(shown, fmt, output, title="Forecast")
    if fmt == "table" and not output:
        for name, table in runs.results:
            render.note(runs.say(name, forecast_note(table)))


@app.command()
@handle_errors
def rollout(
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
) -> None:
    """Rollout headroom per Deployment: can its rolling update (maxSurge extra pods) and a
    blue-green rollout (all replicas again) be placed on the nodes' free allocatable now?"""
    from capplan import render, store
    from capplan.analysis.rollout import rollout_report
    from capplan.report.rollout import REPORT_COLUMNS as ROLLOUT_TABLE_COLUMNS
    from capplan.report.rollout import rollout_note

    check_format(fmt)
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        runs = fleet_run(con, cluster, lambda c: rollout_report(c, window_option(window), namespace))
    shown = runs.frame(lambda t: t.select(ROLLOUT_TABLE_COLUMNS) if fmt == "table" else t)
    render.emit(shown, fmt, output, title="Rollout headroom")
    if fmt == "table" and not output:
        for name, table in runs.results:
            render.note(runs.say(name, rollout_note(table)))
