"""`capplan serve` (not built yet: issue 7)."""

from __future__ import annotations

from capplan.cli import app
from capplan.cli.common import not_built


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve() -> None:
    """Not built yet (issue 7)."""
    not_built("serve", 7)
