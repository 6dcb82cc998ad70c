"""`capplan prune --after T | --before T [-n NS] [--compact [--raw-retention 35d]] [--dry-run]`."""

from __future__ import annotations

from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DbOption, NamespaceOption, cluster_names, handle_errors, time_option, window_option
from capplan.errors import UsageError


@app.command("prune")
@handle_errors
def prune_(
    before: Annotated[str | None, typer.Option(
        "--before", help="Remove what is older than T (ISO 8601, Unix seconds, or a duration back from now: 30d).")] = None,
    after: Annotated[str | None, typer.Option(
        "--after", help="Remove what is later than T (e.g. a late row that hides the cluster).")] = None,
    namespace: NamespaceOption = None,
    cluster: Annotated[list[str] | None, typer.Option(
        "--cluster", help="Only in these clusters (repeatable; default every one). --compact covers them all.")] = None,
    compact: Annotated[bool, typer.Option(
        "--compact", help="Roll raw samples older than --raw-retention into hourly summaries (daily past 400 days); "
                          "see docs/storage.md.")] = False,
    raw_retention: Annotated[str, typer.Option(
        "--raw-retention", help="With --compact: raw samples kept, back from the newest one.")] = "35d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Remove usage samples, restarts and spec history before or after a time; --compact rolls old
    raw samples into hourly and daily summaries."""
    from capplan import store
    from capplan.prune import prune
    if before is None and after is None and not compact:
        raise UsageError("give --before T and/or --after T, or --compact")
    retention = window_option(raw_retention, "--raw-retention")
    if retention.total_seconds() <= 0:
        raise UsageError("--raw-retention must be longer than 0s")
    before_t = time_option(before, "--before") if before is not None else None
    after_t = time_option(after, "--after") if after is not None else None
    if before_t is not None and after_t is not None and before_t >= after_t:
        raise UsageError("--before must be earlier than --after (that would remove everything)")
    summary = None
    with store.collection_lock(db):
        con = store.open_db(db, create=False)
        try:
            from capplan.analysis import fleet

            clusters = fleet.select(con, cluster_names(cluster))[1] if cluster else None
            results = (prune(con, before=before_t, after=after_t, namespaces=namespace, dry_run=dry_run,
                             clusters=clusters)
                       if before_t is not None or after_t is not None else None)
            if compact:
                from capplan.rollup import compact as run_compact

                con.execute("BEGIN TRANSACTION")
                try:
                    summary = run_compact(con, retention)
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("ROLLBACK" if dry_run else "COMMIT")
            if not dry_run:
                store.refresh_node_usage(con)  # the node sums of what was removed or rolled up
                store.cluster_usage(con)  # complete days still appended in time order (schema 009)
                con.execute("CHECKPOINT")
        finally:
            con.close()
    if results is not None:
        verb = "would remove" if dry_run else "removed"
        parts = [f"{r.table} {r.removed:,}" + (f" (+{r.cut:,} cut)" if r.cut else "")
                 for r in results if r.removed or r.cut]
        typer.echo(f"{verb}: {', '.join(parts) if parts else 'nothing'}")
    if summary is not None:
        verb = "would roll up" if dry_run else "rolled up"
        before_text = f" before {summary.raw_cutoff:%Y-%m-%dT%H:%M:%SZ}" if summary.raw_cutoff else ""
        typer.echo(f"{verb}: {summary.raw_samples_rolled:,} raw samples{before_text} into "
                   f"{summary.hourly_rows_written:,} hourly rows; {summary.hourly_rows_rolled:,} hourly rows "
                   f"into {summary.daily_rows_written:,} daily rows")
