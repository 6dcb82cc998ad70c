"""`capplan import PATH`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DbOption, handle_errors


@app.command("import")
@handle_errors
def import_(
    path: Annotated[Path, typer.Argument(help="A sample folder (data/samples/...) or a long-format .parquet/.csv file.")],
    db: DbOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running collection instead of exiting 5.")] = False,
) -> None:
    """Load a data set in capplan's sample format, or a long-format usage file, into the DB."""
    from capplan.importer import import_path

    started = time.monotonic()
    summary = import_path(path, db, wait=wait)
    typer.echo(
        f"imported {summary.path}: {summary.samples:,} new samples of {summary.samples_read:,} read, "
        f"{summary.spec_rows:,} new spec rows in {time.monotonic() - started:.1f}s"
    )
