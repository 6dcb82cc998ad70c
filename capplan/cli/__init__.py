"""The `capplan` command line: thin wrappers that parse, call the library, and render.

Each command lives in its own module under capplan/cli/ and registers itself on `app`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli.common import DEBUG
from capplan.cli.oneline import OneLineErrorGroup

app = typer.Typer(
    name="capplan",
    cls=OneLineErrorGroup,  # usage errors as one line (cron-friendly)
    help="Capacity planning and overcommit analysis for Kubernetes clusters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Capacity planning and overcommit analysis for Kubernetes clusters."""
    if debug:
        DEBUG["on"] = True


# Registration order is the order `capplan --help` lists them.
from capplan.cli import (  # noqa: E402,F401
    collect_cmd,
    import_cmd,
    report_cmd,
    nodes_cmd,
    eviction_cmd,
    recommend_cmd,
    forecast_cmd,
    serve_cmd,
    patch_cmd,
    resize_cmd,
    check_cmd,
    whatif_cmd,
    prune_cmd,
)


def main() -> None:
    """Console-script entry point."""
    app()
