"""`capplan collect` (not built yet: issue 3)."""

from __future__ import annotations

from capplan.cli import app
from capplan.cli.common import not_built


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def collect() -> None:
    """Not built yet (issue 3)."""
    not_built("collect", 3)
