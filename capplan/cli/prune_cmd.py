"""`capplan prune --after T | --before T [-n NS] [--dry-run]`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DbOption, NamespaceOption, handle_errors, time_option
from capplan.errors import UsageError


@app.command("prune")
@handle_errors
def prune_(
    before: Annotated[str | None, typer.Option(
        "--before", help="Remove what is older than T (ISO 8601, Unix seconds, or a duration back from now: 30d).")] = None,
    after: Annotated[str | None, typer.Option(
        "--after", help="Remove what is later than T (e.g. a late row that hides the cluster).")] = None,
    namespace: NamespaceOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Remove usage samples, restarts and spec history before or after a time."""
    from capplan import store
    from capplan.prune import prune

    if before is None and after is None:
        raise UsageError("give --before T and/or --after T")
    before_t = time_option(before, "--before") if before is not None else None
    after_t = time_option(after, "--after") if after is not None else None
    if before_t is not None and after_t is not None and before_t >= after_t:
        raise UsageError("--before must be earlier than --after (that would remove everything)")
    with store.collection_lock(db):
        con = store.open_db(db, create=False)
        try:
            results = prune(con, before=before_t, after=after_t, namespaces=namespace, dry_run=dry_run)
            if not dry_run:
                con.execute("CHECKPOINT")
        finally:
            con.close()
    verb = "would remove" if dry_run else "removed"
    parts = [f"{r.table} {r.removed:,}" + (f" (+{r.cut:,} cut)" if r.cut else "") for r in results if r.removed or r.cut]
    typer.echo(f"{verb}: {', '.join(parts) if parts else 'nothing'}")
