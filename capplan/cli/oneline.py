"""Usage errors as one line.

Typer prints a usage error (unknown option, a value of the wrong type, a missing argument) as a
multi-line rich panel. capplan runs from cron, where every failure must be one line naming the
problem, so the root group catches them and prints `capplan: <message>` with exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup


def _one_line(text: str) -> str:
    return " ".join(text.split())


class OneLineErrorGroup(TyperGroup):
    """The root command group: usage errors become one line on stderr and their exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        try:
            # Non-standalone: ClickExceptions propagate; Exit comes back as its code.
            rv = super().main(args, prog_name, complete_var, standalone_mode=False,
                              windows_expand_args=windows_expand_args, **extra)
        except ClickException as err:
            hint = ""
            ctx = getattr(err, "ctx", None)
            if ctx is not None:
                hint = f" (see `{ctx.command_path} --help`)"
            message = _one_line(err.format_message())
            if message:  # `capplan` alone has printed its help and has nothing to add
                typer.echo(f"capplan: {message}{hint}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("capplan: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
