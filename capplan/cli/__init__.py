"""The `capplan` command line: thin wrappers that parse, call the library, and render.

Each command lives in its own module under capplan/cli/ and registers itself on `app`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import allocators, fastcoerce
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


def _command_in(argv: list[str]) -> str | None:
    """The command `argv` runs (its first word after the root options, which take no value), if it
    names a registered one."""
    from typer.main import get_command_name

    word = next((arg for arg in argv if not arg.startswith("-")), None)
    names = {info.name or (get_command_name(info.callback.__name__) if info.callback else "")
             for info in app.registered_commands}
    return word if word in names else None


def main() -> None:
    """Console-script entry point: the command (invoke), then the process ends without Python's
    teardown of its modules (exit_now)."""
    try:
        invoke()
    except SystemExit as done:
        exit_now(done)
        raise


def exit_now(done: SystemExit) -> None:
    """End the process with `done`'s exit code without tearing down the interpreter's modules:
    freeing polars', DuckDB's and numpy's module state took 60-150 ms of every `capplan` process
    after its work was done (a process that imported them, measured from its last statement to its
    exit on this 2-core machine at load 7-9; ~5 ms with os._exit), which an hourly collect and the
    recommend after it both paid. Output is flushed and atexit handlers run first, as at a normal
    exit. Returns (the caller then raises `done` for the normal exit) when the code is not a number,
    output cannot be flushed (a closed pipe: Python's own handling applies) or a thread other than
    the main one would still have to be joined."""
    import atexit
    import os
    import sys
    import threading

    code = 0 if done.code is None else done.code
    if not isinstance(code, int) or any(t is not threading.main_thread() and not t.daemon and t.is_alive()
                                        for t in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    atexit._run_exitfuncs()
    os._exit(code)


def invoke() -> None:
    """Run the command `sys.argv` names (raises SystemExit with its exit code). Typer builds the
    click command of every registered command on each call (each option's parameter: ~26 ms of CPU
    for the 19 commands, more than a third of `capplan --help`'s own work); a run of one command
    builds that command alone, with the same root options and the same messages, and with its
    allocator setting (capplan.cli.allocators). Anything else (`--help`, an unknown word) gets the
    whole app."""
    import sys

    name = _command_in(sys.argv[1:])
    if name is None:
        app()
        return
    allocators.configure(name)  # before the command imports polars
    from typer.main import get_command_name

    every = app.registered_commands
    app.registered_commands = [info for info in every
                               if (info.name or (get_command_name(info.callback.__name__) if info.callback else "")) == name]
    try:
        app()
    finally:
        app.registered_commands = every
