"""Option values checked once, for the command line and the HTTP API alike.

`capplan recommend --cpu-percentile 150` and `/api/v1/recommendations?cpu_percentile=150` are
refused by the same function with the same rule; only the spelling of the option in the message
differs. Each checker takes `spell`, which turns the canonical name (`cpu_percentile`) into what
the user typed: `cli_spelling` gives `--cpu-percentile`, `api_spelling` keeps `cpu_percentile`.

Errors follow CONTRACT.md: an option value that makes no sense, an unparsable duration or
quantity included, is UsageError (exit 2; HTTP 400).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from capplan.errors import BadInputError, UsageError
from capplan.quantity import parse_cpu_cores, parse_duration, parse_memory_bytes

if TYPE_CHECKING:
    from capplan.analysis.strategies import StrategyParams

# The analyses (polars, DuckDB) are imported inside the checks that need them, so that the CLI
# can import this module and `capplan --help` stays fast.

Spelling = Callable[[str], str]
T = TypeVar("T")

# The views of `capplan eviction --view` and `/api/v1/eviction?view=` (EvictionResult's frames).
EVICTION_VIEWS = ("pods", "nodes", "containers", "qos", "advice")


def cli_spelling(name: str) -> str:
    """`cpu_percentile` -> `--cpu-percentile`."""
    return "--" + name.replace("_", "-")


def api_spelling(name: str) -> str:
    """Query parameters keep the canonical name."""
    return name


def as_given(name: str) -> str:
    """For callers that already hold the spelled option (`--min-history`)."""
    return name


def _value(text: str, parse: Callable[[str], T], name: str, spell: Spelling) -> T:
    """`parse(text)`; a value that is none is wrong usage (exit 2, HTTP 400) naming the option
    (an option value is not data: exit 4 is for files and sources; docs/reference.md)."""
    try:
        return parse(text)
    except BadInputError as err:
        raise UsageError(f"{spell(name)}: {err}") from None


def duration(text: str, name: str = "window", spell: Spelling = cli_spelling) -> timedelta:
    """A positive duration (`14d`, `90m`); the message names the option."""
    return _value(text, parse_duration, name, spell)


def staleness(text: str, spell: Spelling = cli_spelling) -> timedelta:
    """`--max-staleness`: a duration, or `0` for no freshness check."""
    if text.strip() == "0":
        return timedelta(0)
    return duration(text, "max_staleness", spell)


def step_seconds(text: str, name: str = "step", spell: Spelling = cli_spelling) -> int:
    """A collection resolution: a whole number of seconds, at least 1 (`30s`, `1m`, `5m`)."""
    seconds = duration(text, name, spell).total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise UsageError(f"{spell(name)} must be a whole number of seconds (e.g. 30s, 1m, 5m), not {text!r}")
    return int(seconds)


def strategy(name: str, spell: Spelling = cli_spelling) -> str:
    """A registered recommendation strategy (an unknown name is wrong usage)."""
    from capplan.analysis.strategies import get_strategy

    get_strategy(name)
    return name


def strategy_params(*, cpu_percentile: float = 95.0, memory_buffer: float = 15.0, target_utilization: float = 0.7,
                    min_history: timedelta = timedelta(days=1), horizon: timedelta = timedelta(days=7),
                    allow_hpa: bool = False, risk: str | None = None,
                    spell: Spelling = cli_spelling) -> StrategyParams:
    """The options of the recommendation strategies, range-checked (`risk`: auto's level,
    default the strategies' DEFAULT_RISK)."""
    from capplan.analysis.strategies import StrategyParams
    from capplan.analysis.strategies.risk import DEFAULT_RISK, knobs_for

    for name, value in (("cpu_percentile", cpu_percentile), ("memory_buffer", memory_buffer),
                        ("target_utilization", target_utilization)):
        if not math.isfinite(value):
            raise UsageError(f"{spell(name)} must be a finite number, not {value!r}")
    if not 0 < cpu_percentile <= 100:
        raise UsageError(f"{spell('cpu_percentile')} must be in (0, 100], not {cpu_percentile:g}")
    if memory_buffer < 0:
        raise UsageError(f"{spell('memory_buffer')} must not be negative, not {memory_buffer:g}")
    if not 0 < target_utilization <= 1:
        raise UsageError(f"{spell('target_utilization')} must be in (0, 1], not {target_utilization:g}")
    return StrategyParams(cpu_percentile=cpu_percentile, memory_buffer_percent=memory_buffer,
                          target_utilization=target_utilization,
                          min_history=min_history, horizon=horizon, allow_hpa=allow_hpa,
                          risk=knobs_level(risk or DEFAULT_RISK, knobs_for))


def knobs_level(level: str, knobs_for: Callable[[str], object]) -> str:
    """`level` when the risk registry knows it (its lookup raises UsageError naming the levels)."""
    knobs_for(level)
    return level


def cost(value: float | None, name: str, spell: Spelling = cli_spelling) -> float | None:
    """A price per hour (`--cpu-cost`, `--memory-cost`): unset, or a finite number >= 0."""
    if value is not None and (not math.isfinite(value) or value < 0):
        raise UsageError(f"{spell(name)} must not be negative")
    return value


def eviction_view(view: str, spell: Spelling = cli_spelling) -> str:
    """One of EVICTION_VIEWS."""
    if view not in EVICTION_VIEWS:
        raise UsageError(f"{spell('view')} must be one of {', '.join(EVICTION_VIEWS)}, not {view!r}")
    return view


def eviction_usage(usage: str, spell: Spelling = cli_spelling) -> str:
    """The pod usage the eviction order ranks by: one of the analysis' USAGE_BASES."""
    from capplan.analysis.eviction import USAGE_BASES

    if usage not in USAGE_BASES:
        raise UsageError(f"{spell('usage')} must be one of {', '.join(USAGE_BASES)}, not {usage!r}")
    return usage


def pod_shape(cpu: str | None, memory: str | None, spell: Spelling = cli_spelling) -> tuple[float, int]:
    """`fit`'s pod shape as (cores, bytes); at least one of the two must be given."""
    if cpu is None and memory is None:
        raise UsageError(f"give the pod shape: {spell('cpu')} Q and/or {spell('memory')} Q "
                         "(e.g. cpu 500m, memory 1Gi)")
    return (_value(cpu, parse_cpu_cores, "cpu", spell) if cpu is not None else 0.0,
            _value(memory, parse_memory_bytes, "memory", spell) if memory is not None else 0)


def replicas(value: int | None, spell: Spelling = cli_spelling) -> int | None:
    """`fit --replicas`: unset or at least 1."""
    if value is not None and value < 1:
        raise UsageError(f"{spell('replicas')} must be at least 1")
    return value
