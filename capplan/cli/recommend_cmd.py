"""`capplan recommend` (not built yet: issue 10)."""

from __future__ import annotations

from capplan.cli import app
from capplan.cli.common import not_built


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def recommend() -> None:
    """Not built yet (issue 10)."""
    not_built("recommend", 10)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def backtest() -> None:
    """Not built yet (issue 10)."""
    not_built("backtest", 10)
