"""Right-sizing strategies: name -> module with NEEDS and recommend(history, params)."""

from __future__ import annotations

from types import ModuleType

from capplan.analysis.strategies import auto, max_target, simple, vpa
from capplan.analysis.strategies.base import History, Needs, StrategyParams
from capplan.errors import UsageError

STRATEGIES: dict[str, ModuleType] = {
    "auto": auto,
    "simple": simple,
    "vpa": vpa,
    "max-target": max_target,
}
DEFAULT_STRATEGY = "auto"


def get_strategy(name: str) -> ModuleType:
    """The strategy module called `name`; UsageError (exit 2) for an unknown name."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UsageError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}") from None


__all__ = ["STRATEGIES", "DEFAULT_STRATEGY", "History", "Needs", "StrategyParams", "get_strategy"]
