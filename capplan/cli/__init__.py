"""The `capplan` command line: thin wrappers that parse, call the library, and render.

Each command lives in its own module under capplan/cli/ and registers itself on `app`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import fastcoerce
from capplan.cli.common import DEBUG
from capplan.cli.oneline import OneLineErrorGroup

fastcoerce.install()  # option values without pydantic where typer would only pass them through

app = typer.Typer(
    name="capplan",
    cls=OneLineErrorGroup,  # usage errors as one line (cron-friendly)
    help="Capacity planning and overcommit analysis for Kubernetes clusters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from capplan import __version__

        typer.echo(f"capplan {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Capacity planning and overcommit analysis for Kubernetes clusters."""
    if debug:
        DEBUG["on"] = True


# Registration order is the order `capplan --help` lists them.
from capplan.cli import (  # noqa: E402,F401
    check_cmd,
    collect_cmd,
    eviction_cmd,
    forecast_cmd,
    import_cmd,
    lake_cmd,
    nodes_cmd,
    patch_cmd,
    prune_cmd,
    recommend_cmd,
    report_cmd,
    resize_cmd,
    serve_cmd,
    whatif_cmd,
)

# `capplan --help` groups the commands by what they are for.
PANELS = {
    "Get data in": ("collect", "import"),
    "Analyse": ("report", "nodes", "namespaces", "fit", "cluster", "eviction", "recommend", "backtest", "forecast",
                "rollout", "whatif"),
    "Act on it": ("patch", "resize-plan", "check"),
    "Serve": ("serve",),
    "Scale out": ("export-lake",),
}
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
for _info in app.registered_commands:
    _name = _info.name or (_info.callback.__name__.replace("_", "-") if _info.callback else "")
    _info.rich_help_panel = _PANEL_OF.get(_name, "Other")


def main() -> None:
    """Console-script entry point."""
    app()
