"""`capplan forecast` (not built yet: issue 6)."""

from __future__ import annotations

from capplan.cli import app
from capplan.cli.common import not_built


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def forecast() -> None:
    """Not built yet (issue 6)."""
    not_built("forecast", 6)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def rollout() -> None:
    """Not built yet (issue 6)."""
    not_built("rollout", 6)
