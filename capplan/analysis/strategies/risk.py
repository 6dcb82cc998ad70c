"""The risk dial of the `auto` strategy: one set of knobs per level (`--risk low|medium|high`).

A level moves every part of the sizing the same way: the CPU percentile (how often usage may
exceed the request) and the memory step-down (how far below the current limit a limit may come
in one step, as a multiple of the observed peak). The parts that are not a matter of taste (the
peak margin, VPA's OOM bump, the trend) are the same at every level.

The levels are round, doubling steps (8x / 4x / 2x the peak; p99 / p95 / p90) rather than values
fitted to one data set; `capplan backtest --splits` places each on the slack/OOM frontier, and
docs/recommend.md publishes where they land on the Bitbrains month. The default is the level
whose OOM container-days there were at most the current specs' (mean over the splits) while
saving the most memory: `low` (docs/recommend.md, "The risk dial").
"""

from __future__ import annotations

from dataclasses import dataclass

from capplan.errors import UsageError


@dataclass(frozen=True)
class Knobs:
    """What `auto` sizes with. The booleans exist for the ablation (backtest --ablation):
    switching a part off shows what it contributes."""

    cpu_quantile: float        # CPU request = this per-pod percentile of usage (0.99, 0.95, 0.90)
    step_down: float           # a limit never comes below min(current, step_down x peak) in one step
    # 15%: VPA's --recommendation-margin-fraction default (pkg/recommender/logic/recommender.go)
    # and KRR simple's memory buffer default; without it, 7 more OOM container-days (399 vs 392)
    # over the 16 Bitbrains splits for 0.9% less memory (docs/recommend.md, the ablation).
    # (A separate, larger margin for short histories was dropped: over the 16 Bitbrains splits it
    # prevented no OOM container-day and cost 0.15% of memory; docs/recommend.md, the ablation.)
    peak_margin: float = 0.15
    trend: bool = True         # project a clearly rising trend of daily peaks / daily mean CPU
    # memory request from a Gumbel fit (the 1-in-horizon daily peak) instead of the need: off,
    # as over the 16 Bitbrains splits it saved 2.7 points of request slack but left usage above
    # the request (first in line for eviction) on 17.2% of container-days instead of 3.8%
    # (docs/recommend.md, the ablation); `backtest --ablation` shows it as "auto +gumbel".
    gumbel_request: bool = False
    oom_bump: bool = True      # VPA's OOM bump after an OOM kill (or usage above the limit)
    step_down_on: bool = True  # False: the limit is the need alone (no step-down guard)


RISK_LEVELS: dict[str, Knobs] = {
    "low": Knobs(cpu_quantile=0.99, step_down=8.0),
    "medium": Knobs(cpu_quantile=0.95, step_down=4.0),
    "high": Knobs(cpu_quantile=0.90, step_down=2.0),
}
DEFAULT_RISK = "low"


def knobs_for(risk: str) -> Knobs:
    """The knobs of a named level; UsageError (exit 2) for an unknown one."""
    try:
        return RISK_LEVELS[risk]
    except KeyError:
        raise UsageError(f"unknown risk level {risk!r}: use one of {', '.join(RISK_LEVELS)}") from None
