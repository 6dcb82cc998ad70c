"""`capplan recommend` and `capplan backtest` (issue 10)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

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
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    engine_scope,
    fleet_run,
    handle_errors,
    keep_rollup_note,
    one_cluster,
    window_option,
)
from capplan.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

    from capplan.analysis.strategies import StrategyParams

# capplan.analysis.strategies' registry names and default, restated so `capplan --help` need not
# import the strategies (polars, numpy); tests/test_cli_lazy.py checks they stay equal.
STRATEGIES = ("auto", "simple", "vpa", "max-target")
DEFAULT_STRATEGY = "auto"

StrategyOption = Annotated[str, typer.Option("--strategy", "-s", metavar=f"[{'|'.join(STRATEGIES)}]", help=f"One of {', '.join(STRATEGIES)}.")]
CpuPercentileOption = Annotated[float, typer.Option("--cpu-percentile", help="simple: per-pod CPU percentile.")]
MemoryBufferOption = Annotated[float, typer.Option("--memory-buffer", help="simple: % added to the peak memory.")]
TargetOption = Annotated[float, typer.Option("--target-utilization", help="max-target: max usage / this.")]
MinHistoryOption = Annotated[str, typer.Option("--min-history", help="Less history than this: no recommendation.")]
HorizonOption = Annotated[str, typer.Option("--horizon", help="auto: how far ahead a size must hold.")]
# capplan.analysis.strategies.risk's levels and default, restated for the same reason (checked
# by tests/cli/test_lazy_imports.py).
RISK_LEVELS = ("low", "medium", "high")
DEFAULT_RISK = "low"
RiskOption = Annotated[str, typer.Option("--risk", metavar=f"[{'|'.join(RISK_LEVELS)}]", help=f"auto: {' | '.join(RISK_LEVELS)} (docs/recommend.md).")]
TargetOomOption = Annotated[str | None, typer.Option(
    "--target-oom", help="auto: pick the risk level whose backtested OOM container-days are at most RATE "
                         "(0.005, 0.5%, or 'current'), from rolling splits of this history.")]


def _params(cpu_percentile: float, memory_buffer: float, target_utilization: float, min_history: str,
            horizon: str, allow_hpa: bool = False, risk: str = DEFAULT_RISK) -> StrategyParams:
    # The same checks as /api/v1/recommendations (capplan.options).
    return checked.strategy_params(
        cpu_percentile=cpu_percentile, memory_buffer=memory_buffer, target_utilization=target_utilization,
        min_history=checked.duration(min_history, "min_history"), horizon=checked.duration(horizon, "horizon"),
        allow_hpa=allow_hpa, risk=risk)


@app.command()
@handle_errors
def recommend(
    strategy: StrategyOption = DEFAULT_STRATEGY,
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    window: WindowOption = "14d",
    namespace: NamespaceOption = None,
    cpu_percentile: CpuPercentileOption = 95.0,
    memory_buffer: MemoryBufferOption = 15.0,
    target_utilization: TargetOption = 0.7,
    min_history: MinHistoryOption = "1d",
    horizon: HorizonOption = "7d",
    risk: RiskOption = DEFAULT_RISK,
    target_oom: TargetOomOption = None,
    allow_hpa: Annotated[bool, typer.Option("--allow-hpa", help="Change requests an HPA scales on.")] = False,
    cpu_cost: Annotated[float | None, typer.Option("--cpu-cost", help="Cost of one core per hour.")] = None,
    memory_cost: Annotated[float | None, typer.Option("--memory-cost", help="Cost of one GiB per hour.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="The whole reason of each number instead of short tags (table).")] = False,
    engine: EngineOption = "duckdb",
    lake: LakeOption = None,
) -> None:
    """Right-sizing per container, rolled up per workload (strategies auto, simple, vpa, max-target)."""
    from capplan import render, store
    from capplan.analysis.backtest import choose_level, parse_target_oom
    from capplan.analysis.recommend import recommend as run_recommend
    from capplan.analysis.strategies import get_strategy
    from capplan.engines import check_engine

    check_format(fmt)
    check_engine(engine, lake)
    get_strategy(strategy)
    target = parse_target_oom(target_oom) if target_oom is not None else None
    params = _params(cpu_percentile, memory_buffer, target_utilization, min_history, horizon, allow_hpa, risk)
    checked.cost(cpu_cost, "cpu_cost")
    checked.cost(memory_cost, "memory_cost")
    con = store.open_db(db, read_only=True, end=end_option(end))
    several = len(store.clusters(con)) > 1

    def one(c: Any) -> pl.DataFrame:
        chosen = replace(params)  # each cluster picks its own level from its own history
        if target is not None:
            level, _, why = choose_level(c, target, namespace, chosen)
            chosen.risk = level
            typer.echo(f"cluster {store.active_cluster(c)}: {why}" if several else why, err=True)
        return run_recommend(c, strategy, window_option(window), namespace, chosen, cpu_cost, memory_cost)

    try:
        with engine_scope(engine, lake):
            runs = fleet_run(con, cluster, one)
        keep_rollup_note(con, window)  # on this connection: no second open after the command
    finally:
        con.close()

    def view(frame: pl.DataFrame) -> pl.DataFrame:
        if fmt != "table":
            return frame
        # imported for the terminal view only: capplan.report's modules were ~15 ms of CPU of every
        # CSV run (`python -X importtime`, the bench's M next hour)
        from capplan.report.recommendations import table_view

        return table_view(frame, explain)

    render.emit(runs.frame(view), fmt, output, title=f"Recommendations ({strategy}), biggest impact first")


def _mean_and_worst(metric: str, fmt: str) -> Callable[[dict[str, Any]], str]:
    """`mean (worst)` of one metric of a split summary row, "-" when it has no mean."""
    def text(row: dict[str, Any]) -> str:
        mean = row[f"{metric}_mean"]
        return "-" if mean is None else f"{fmt.format(mean)} ({fmt.format(row[f'{metric}_worst'])})"
    return text


def _compact_summary(summary: pl.DataFrame) -> pl.DataFrame:
    """The terminal view of the summary: "mean (worst)" per metric."""
    import polars as pl

    shown = [("cpu_slack", "{:.3f}"), ("cpu_short", "{:.4f}"), ("throttled_hours", "{:.2%}"),
             ("mem_slack", "{:.3f}"), ("oom_container_days", "{:.2%}"), ("mem_vs_current", "{:.3f}")]
    return summary.select(
        *(["cluster"] if "cluster" in summary.columns else []), "policy", "splits",
        *[pl.struct(f"{m}_mean", f"{m}_worst").map_elements(_mean_and_worst(m, f), return_dtype=pl.Utf8)
          .alias(f"{m} mean (worst)") for m, f in shown],
        pl.col("splits_oom_at_most_current_and_less_memory").alias("splits oom <= current, less memory"))


def _durations(text: str, option: str) -> list:
    values = [window_option(t, option) for t in text.split(",") if t.strip()]
    if not values:
        raise UsageError(f"{option} needs at least one duration")
    return values


def _risks(text: str) -> list[str]:
    names = list(RISK_LEVELS) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in RISK_LEVELS:
            raise UsageError(f"unknown risk level {name!r}: use one of {', '.join(RISK_LEVELS)}, or all")
    if not names:
        raise UsageError("--risk needs a level")
    return names


@app.command()
@handle_errors
def backtest(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help=f"all, or one of {', '.join(STRATEGIES)}.")] = "all",
    train: Annotated[str, typer.Option("--train", help="Fit on the first TRAIN of the history (one split).")] = "21d",
    test: Annotated[str, typer.Option("--test", help="Judge on the TEST that follows (one split).")] = "7d",
    splits: Annotated[bool, typer.Option("--splits", help="Rolling origins: every --step, each --trains x --tests.")] = False,
    trains: Annotated[str, typer.Option("--trains", help="--splits: train lengths.")] = "7d,14d,21d",
    tests: Annotated[str, typer.Option("--tests", help="--splits: test lengths.")] = "7d,14d",
    step: Annotated[str, typer.Option("--step", help="--splits: time between origins.")] = "3d",
    per_split: Annotated[bool, typer.Option("--per-split", help="--splits: one row per split and policy.")] = False,
    ablation: Annotated[bool, typer.Option("--ablation", help="Also auto without each of its parts.")] = False,
    risk: Annotated[str, typer.Option("--risk", help="auto: a level, a comma list, or all.")] = DEFAULT_RISK,
    target_oom: TargetOomOption = None,
    db: DbOption = None,
    cluster: ClusterOption = None,
    end: EndOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json, or html (with --splits).")] = "table",
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    cpu_percentile: CpuPercentileOption = 95.0,
    memory_buffer: MemoryBufferOption = 15.0,
    target_utilization: TargetOption = 0.7,
    min_history: MinHistoryOption = "1d",
    horizon: HorizonOption = "7d",
) -> None:
    """Judge strategies on stored history: cpu_slack, cpu_short, mem_slack, oom_container_days,
    throttled_hours, with the current requests and hindsight as references; --splits over many."""
    from capplan import render, store
    from capplan.analysis.backtest import backtest as run_backtest
    from capplan.analysis.backtest import (
        backtest_splits,
        choose_level,
        parse_target_oom,
        summarise,
    )
    from capplan.analysis.strategies import get_strategy

    if fmt == "html" and not splits:
        raise UsageError("--format html needs --splits")
    if fmt != "html":
        check_format(fmt)
    names = "all" if strategy == "all" else [s.strip() for s in strategy.split(",") if s.strip()]
    if names != "all":
        for name in names:
            get_strategy(name)
    levels = _risks(risk)
    target = parse_target_oom(target_oom) if target_oom is not None else None
    params = _params(cpu_percentile, memory_buffer, target_utilization, min_history, horizon, risk=levels[0])
    # every option is checked, used or not (a typo in --step fails even without --splits)
    train_lengths, test_lengths = _durations(trains, "--trains"), _durations(tests, "--tests")
    train_one, test_one = window_option(train, "--train"), window_option(test, "--test")
    step_every = window_option(step, "--step")
    started = time.monotonic()
    con = store.open_db(db, read_only=True, end=end_option(end))
    several = len(store.clusters(con)) > 1

    def one(c: Any) -> pl.DataFrame:
        chosen, chosen_levels = replace(params), levels  # each cluster picks its own level
        if target is not None:
            level, _, why = choose_level(c, target, namespace, chosen)
            chosen.risk, chosen_levels = level, [level]
            typer.echo(f"cluster {store.active_cluster(c)}: {why}" if several else why, err=True)
        if splits:
            return backtest_splits(c, names, train_lengths, test_lengths, step_every, namespace, chosen,
                                   chosen_levels, ablation)
        return run_backtest(c, names, train_one, test_one, namespace, chosen, chosen_levels, ablation)

    try:
        if fmt == "html":  # one page of charts is one cluster's
            cluster = [one_cluster(con, cluster, "backtest --format html") or ""] if store.clusters(con) else None
        runs = fleet_run(con, cluster, one)
    finally:
        con.close()
    if not splits:
        render.emit(runs.frame(), fmt, output, title=f"Backtest: train {train}, test {test}")
    else:
        rows = runs.frame()
        split_count = max(r["split"].n_unique() for _, r in runs.results)
        title = f"Backtest over {split_count} splits (train {trains}; test {tests}; every {step})"
        if fmt == "html":
            from capplan.backtest_html import page

            (_, only), = runs.results  # one cluster, without a cluster column
            text = page(only, summarise(only), title)
            if output and str(output) != "-":
                output.write_text(text)
            else:
                typer.echo(text)
        else:
            summary = runs.frame(summarise)
            view = rows.drop("origin") if per_split else (_compact_summary(summary) if fmt == "table" else summary)
            render.emit(view, fmt, output, title=title)
    if fmt == "table" and not output:
        typer.echo(f"backtest took {time.monotonic() - started:.1f}s")
