"""`capplan export-lake DIR`: the store as a Hive-partitioned Parquet lake (capplan.lake)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DbOption, handle_errors


@app.command("export-lake")
@handle_errors
def export_lake(
    directory: Annotated[Path, typer.Argument(help="The lake folder (created; a rerun writes only what changed).",
                                              show_default=False)],
    db: DbOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Name every partition written.")] = False,
) -> None:
    """Write the store as a Hive-partitioned Parquet lake (cluster=/day=): usage, rollups and spec
    history, incrementally, for `--engine spark --lake DIR`."""
    from capplan import store
    from capplan.lake import export_lake as run_export

    con = store.open_db(db, read_only=True)
    try:
        summary = run_export(con, directory, progress=(lambda line: typer.echo(line, err=True)) if verbose else None)
    finally:
        con.close()
    typer.echo(f"exported {summary.directory}: {summary.written:,} partitions written ({summary.rows_written:,} rows), "
               f"{summary.unchanged:,} unchanged, {summary.removed:,} removed, {summary.tables} tables "
               f"in {summary.seconds:.1f}s")
    sys.stdout.flush()
