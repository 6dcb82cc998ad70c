"""`capplan import PATH`."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DEFAULT_CLUSTER, DbOption, handle_errors


class _Progress:
    """What the import is doing: a live status line with the elapsed time on a terminal; plain
    lines otherwise (cron logs)."""

    def __init__(self) -> None:
        import sys

        self.status = None
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status("reading")

    def __enter__(self) -> _Progress:
        if self.status:
            self.status.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.status:
            self.status.__exit__(kind, exc, tb)

    def __call__(self, message: str) -> None:
        if self.status:
            self.status.update(message)
        else:
            typer.echo(f"capplan: {message}", err=True)


@app.command("import")
@handle_errors
def import_(
    path: Annotated[Path, typer.Argument(help="A sample folder (data/samples/...) or a long-format .parquet/.csv file.")],
    db: DbOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running collection instead of exiting 5.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Where a sample is already stored with another value, take the new one (default: keep the stored).",
    )] = False,
    cluster: Annotated[str, typer.Option(
        "--cluster", help="The cluster the data belongs to (one store holds many).")] = DEFAULT_CLUSTER,
) -> None:
    """Load a data set in capplan's sample format, or a long-format usage file, into the DB.

    Everything is checked before anything is written; bad data is refused whole (exit 4, naming
    FILE:LINE: column)."""
    from capplan.cli.common import cluster_name
    from capplan.importer import import_path

    cluster_name(cluster)
    started = time.monotonic()
    with _Progress() as progress:
        summary = import_path(path, db, wait=wait, replace=replace, progress=progress, cluster=cluster)
    for warning in summary.warnings:
        typer.echo(f"capplan: warning: {warning}", err=True)
    conflicts = f", {summary.conflicts:,} conflicting" if summary.conflicts else ""
    replaced = f" ({summary.replaced:,} replaced)" if summary.replaced else ""
    typer.echo(
        f"imported {summary.path}: {summary.samples:,} new samples of {summary.samples_read:,} read{conflicts}{replaced}, "
        f"{summary.spec_rows:,} new spec rows in {time.monotonic() - started:.1f}s"
    )
