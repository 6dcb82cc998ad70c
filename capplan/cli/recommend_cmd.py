"""`capplan recommend` and `capplan backtest` (issue 10)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from capplan.cli import app
from capplan.cli.common import (
    DbOption, FormatOption, NamespaceOption, OutputOption, WindowOption, check_format, handle_errors,
    window_option,
)
from capplan.errors import UsageError
from capplan.quantity import format_bytes, format_cpu, parse_duration

if TYPE_CHECKING:
    import polars as pl

    from capplan.analysis.strategies import Params

# capplan.analysis.strategies' registry names and default, restated so `capplan --help` need not
# import the strategies (polars, numpy); tests/test_cli_lazy.py checks they stay equal.
STRATEGIES = ("auto", "simple", "vpa", "max-target")
DEFAULT_STRATEGY = "auto"

StrategyOption = Annotated[str, typer.Option("--strategy", "-s", help=f"One of {', '.join(STRATEGIES)}.")]
CpuPercentileOption = Annotated[float, typer.Option("--cpu-percentile", help="simple: per-pod CPU percentile.")]
MemoryBufferOption = Annotated[float, typer.Option("--memory-buffer", help="simple: % added to the peak memory.")]
TargetOption = Annotated[float, typer.Option("--target-utilization", help="max-target: max usage / this.")]
MinHistoryOption = Annotated[str, typer.Option("--min-history", help="Less history than this: no recommendation.")]
HorizonOption = Annotated[str, typer.Option("--horizon", help="auto: how far ahead a size must hold.")]


def _params(cpu_percentile: float, memory_buffer: float, target_utilization: float, min_history: str,
            horizon: str, allow_hpa: bool = False) -> Params:
    from capplan.analysis.strategies import Params

    if not 0 < cpu_percentile <= 100:
        raise UsageError(f"--cpu-percentile must be in (0, 100], not {cpu_percentile:g}")
    if memory_buffer < 0:
        raise UsageError(f"--memory-buffer must not be negative, not {memory_buffer:g}")
    if not 0 < target_utilization <= 1:
        raise UsageError(f"--target-utilization must be in (0, 1], not {target_utilization:g}")
    return Params(cpu_percentile=cpu_percentile, memory_buffer_percent=memory_buffer,
                  target_utilization=target_utilization, min_history=parse_duration(min_history),
                  horizon=parse_duration(horizon), allow_hpa=allow_hpa)


def _arrow(current, recommended, fmt) -> str:
    cur = fmt(current) if current is not None else "-"
    rec = fmt(recommended) if recommended is not None else "-"
    return cur if cur == rec else f"{cur} -> {rec}"


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A terminal-sized view: current -> recommended per value, humanised units."""
    import polars as pl

    rows = []
    for r in frame.iter_rows(named=True):
        no_rec = r["severity"] == "unknown"
        rows.append({
            "workload": f"{r['namespace']}/{r['owner_kind']}/{r['owner_name']}",
            "container": r["container"], "pods": r["pods"],
            **{f"{res}_{kind}": (_arrow(r[f"{res}_{kind}_current"], r[f"{res}_{kind}_recommended"], f)
                                 if not no_rec else (f(r[f"{res}_{kind}_current"]) if r[f"{res}_{kind}_current"] is not None else "-"))
               for res, f in (("cpu", format_cpu), ("memory", format_bytes)) for kind in ("request", "limit")},
            "severity": r["severity"],
            "qos": _arrow(r["qos_class_current"], r["qos_class_recommended"], str),
            "reason": r["reason"],
        })
    return pl.DataFrame(rows)


@app.command()
@handle_errors
def recommend(
    strategy: StrategyOption = DEFAULT_STRATEGY,
    db: DbOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    cpu_percentile: CpuPercentileOption = 95.0,
    memory_buffer: MemoryBufferOption = 15.0,
    target_utilization: TargetOption = 0.7,
    min_history: MinHistoryOption = "1d",
    horizon: HorizonOption = "7d",
    allow_hpa: Annotated[bool, typer.Option("--allow-hpa", help="Change requests an HPA scales on.")] = False,
    cpu_cost: Annotated[Optional[float], typer.Option("--cpu-cost", help="Cost of one core per hour.")] = None,
    memory_cost: Annotated[Optional[float], typer.Option("--memory-cost", help="Cost of one GiB per hour.")] = None,
) -> None:
    """Right-sizing per container, rolled up per workload (strategies auto, simple, vpa, max-target)."""
    from capplan import render, store
    from capplan.analysis.recommend import recommend as run_recommend
    from capplan.analysis.strategies import get_strategy

    check_format(fmt)
    get_strategy(strategy)
    params = _params(cpu_percentile, memory_buffer, target_utilization, min_history, horizon, allow_hpa)
    for name, value in (("--cpu-cost", cpu_cost), ("--memory-cost", memory_cost)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must not be negative")
    con = store.open_db(db, read_only=True)
    try:
        table = run_recommend(con, strategy, window_option(window), namespace, params, cpu_cost, memory_cost)
    finally:
        con.close()
    render.emit(_compact(table) if fmt == "table" else table, fmt, output, title=f"Recommendations ({strategy})")


@app.command()
@handle_errors
def backtest(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help=f"all, or one of {', '.join(STRATEGIES)}.")] = "all",
    train: Annotated[str, typer.Option("--train", help="Fit on the first TRAIN of the history.")] = "21d",
    test: Annotated[str, typer.Option("--test", help="Judge on the TEST that follows.")] = "7d",
    db: DbOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    cpu_percentile: CpuPercentileOption = 95.0,
    memory_buffer: MemoryBufferOption = 15.0,
    target_utilization: TargetOption = 0.7,
    min_history: MinHistoryOption = "1d",
    horizon: HorizonOption = "7d",
) -> None:
    """Judge strategies on stored history: cpu_slack, cpu_short, mem_slack, oom_container_days,
    with the current requests and hindsight as references."""
    from capplan import render, store
    from capplan.analysis.backtest import backtest as run_backtest
    from capplan.analysis.strategies import get_strategy

    check_format(fmt)
    names = "all" if strategy == "all" else [s.strip() for s in strategy.split(",") if s.strip()]
    if names != "all":
        for name in names:
            get_strategy(name)
    params = _params(cpu_percentile, memory_buffer, target_utilization, min_history, horizon)
    started = time.monotonic()
    con = store.open_db(db, read_only=True)
    try:
        table = run_backtest(con, names, parse_duration(train), parse_duration(test), namespace, params)
    finally:
        con.close()
    render.emit(table, fmt, output, title=f"Backtest: train {train}, test {test}")
    if fmt == "table" and not output:
        typer.echo(f"backtest took {time.monotonic() - started:.1f}s")
