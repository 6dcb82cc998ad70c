"""`capplan collect`: pull usage and spec metrics from Prometheus into the DB (docs/collect.md)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated

import typer

from capplan import options as checked
from capplan.cli import app
from capplan.cli.common import (
    DEFAULT_CLUSTER,
    DbOption,
    NamespaceOption,
    check_format,
    cluster_name,
    handle_errors,
    window_option,
)
from capplan.errors import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from capplan.collect import CollectSummary

URL_ENV = "CAPPLAN_PROMETHEUS_URL"
TOKEN_ENV = "CAPPLAN_PROMETHEUS_TOKEN"


def parse_time(text: str, option: str) -> datetime:
    """ISO 8601 (a naive time is UTC) or Unix seconds, as naive UTC."""
    raw = text.strip()
    try:
        if raw.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), tz=UTC).replace(tzinfo=None)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        raise UsageError(f"{option}: not an ISO 8601 time or Unix seconds: {raw[:60]!r}") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from --token-file, else $CAPPLAN_PROMETHEUS_TOKEN (never echoed)."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise UsageError(f"--token-file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


# Without a terminal (cron), a plain line at most this often: enough to see a long run move in a
# log without flooding it; runs shorter than this print only their summary line.
PLAIN_EVERY_SECONDS = 60.0


class _Progress:
    """A progress bar (chunks, samples/s, ETA) on a terminal; plain periodic lines otherwise."""

    def __init__(self, enabled: bool, plain: bool = False) -> None:
        import time

        self.bar: Progress | None = None
        self.plain = plain and not enabled
        self.started = self.last_line = time.monotonic()
        self.task: TaskID | None = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("collect"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar:
            self.bar.__exit__(kind, exc, tb)

    def __call__(self, done: int, total: int, summary: CollectSummary) -> None:
        import time

        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rate = summary.samples / elapsed
        if self.bar:
            if self.task is None:
                self.task = self.bar.add_task("", total=total)
            self.bar.update(self.task, completed=done, total=total,
                            description=f"{summary.samples:,} samples, {rate:,.0f}/s, {summary.queries} queries")
        elif self.plain and now - self.last_line >= PLAIN_EVERY_SECONDS:
            self.last_line = now
            eta = elapsed / done * (total - done) if done else None
            typer.echo(f"capplan: collect: chunk {done}/{total}, {summary.samples:,} samples ({rate:,.0f}/s)"
                       + (f", about {eta / 60:.0f} min left" if eta is not None else ""), err=True)


def _warn(message: str) -> None:
    typer.echo(f"capplan: warning: {message}", err=True)


@app.command()
@handle_errors
def collect(
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus-url", help=f"Prometheus-compatible API base URL (default ${URL_ENV}).", show_default=False)] = None,
    since: Annotated[str, typer.Option("--since", help="History to pull on the first run.")] = "14d",
    start: Annotated[str | None, typer.Option("--start", help="Window start (ISO 8601 UTC or Unix seconds); overrides the high-water mark.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Window end (default: now - 1m).")] = None,
    step: Annotated[str, typer.Option("--step", help="Usage resolution: CPU averaged and memory peak over each step.")] = "60s",
    spec_step: Annotated[str | None, typer.Option("--spec-step", help="Resolution of spec metrics (default max(step, 5m)).")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help=f"Bearer token file (default ${TOKEN_ENV}).")] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="CA bundle for a private CA.")] = None,
    insecure_skip_tls_verify: Annotated[bool, typer.Option("--insecure-skip-tls-verify", help="Do not verify TLS certificates (unsafe).")] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="Per-request timeout.")] = "60s",
    retries: Annotated[int, typer.Option("--retries", help="Retries of a timed-out or 5xx/429 request (with backoff).")] = 3,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Queries in flight at once.")] = 2,
    chunk: Annotated[str, typer.Option("--chunk", help="Commit every CHUNK of history (a kill loses at most one).")] = "1d",
    max_points: Annotated[int, typer.Option("--max-points", help="Most points (series x steps) one answer may hold.")] = 250_000,
    usage_selector: Annotated[str | None, typer.Option(
        "--usage-selector", help='Label matchers picking the cAdvisor scrape to read, e.g. '
        'job="kubelet",metrics_path="/metrics/cadvisor" (default: picked when several export the same containers).')] = None,
    namespace: NamespaceOption = None,
    cluster: Annotated[str, typer.Option(
        "--cluster", help="The cluster this Prometheus watches (one store holds many).")] = DEFAULT_CLUSTER,
    cluster_label: Annotated[str | None, typer.Option(
        "--cluster-label", help="A central Prometheus/Thanos/Mimir holding many clusters: the label naming them; "
                                "each value is collected as its own cluster.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running collection instead of exiting 5.")] = False,
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (one summary line), csv or json.")] = "table",
) -> None:
    """Pull container usage (cAdvisor) and spec (kube-state-metrics) from Prometheus into the DB.

    Incremental: later runs continue from where the last one stopped. Cron-safe: a second run
    exits 5 (or queues with --wait); SIGTERM finishes the current chunk, commits and exits 0.
    """
    # One polars thread: a chunk's frames are small and the queries already run beside them, but each
    # polars worker keeps its own allocator arenas, whose freed pages held the peak up (2 days of
    # bench/collect_bench.py's M data, load 13-16: 457-475 -> 393 MiB peak, the same CPU and wall time).
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    from capplan.collect import CollectOptions
    from capplan.collect import collect as run_collect
    from capplan.collect.fleet import collect_clusters

    check_format(fmt)
    url = prometheus_url or os.environ.get(URL_ENV)
    if not url:
        raise UsageError(f"--prometheus-url (or ${URL_ENV}) is required")
    if insecure_skip_tls_verify:
        _warn(f"TLS certificate verification is OFF for {url.split('@')[-1]}: anyone on the network path can "
              "read the token and forge answers")
    if retries < 0 or retries > 10:
        raise UsageError("--retries must be between 0 and 10")
    if max_points < 1000:
        raise UsageError("--max-points must be at least 1000")
    if cluster_label is not None and cluster != DEFAULT_CLUSTER:
        raise UsageError("--cluster and --cluster-label exclude each other: the label names the clusters")
    options = CollectOptions(
        url=url, db=db, since=window_option(since, "--since"),
        start=parse_time(start, "--start") if start else None,
        end=parse_time(end, "--end") if end else None,
        step_seconds=checked.step_seconds(step, "step"),
        spec_step_seconds=checked.step_seconds(spec_step, "spec_step") if spec_step else None,
        namespaces=list(namespace) if namespace else None,
        token=read_token(token_file), ca_file=str(ca_file) if ca_file else None,
        insecure_skip_tls_verify=insecure_skip_tls_verify, timeout_seconds=window_option(timeout, "--timeout").total_seconds(),
        retries=retries, concurrency=concurrency, wait=wait, max_points_per_query=max_points,
        chunk=window_option(chunk, "--chunk"), usage_selector=usage_selector,
        cluster=cluster_name(cluster), cluster_label=cluster_label,
    )
    if cluster_label is not None:
        with _Progress(fmt == "table" and sys.stderr.isatty(), plain=True) as progress:
            summaries = collect_clusters(options, progress=progress, warn=_warn)
        _print_clusters(summaries, fmt)
        return
    with _Progress(fmt == "table" and sys.stderr.isatty(), plain=True) as progress:
        summary = run_collect(options, progress=progress, warn=_warn)
    if fmt == "json":
        typer.echo(json.dumps(summary.as_dict()))
    elif fmt == "csv":
        row = summary.as_dict()
        row["warnings"] = len(row["warnings"])
        typer.echo(",".join(row))
        typer.echo(",".join("" if v is None else str(v) for v in row.values()))
    else:
        typer.echo(summary.line())


def _print_clusters(summaries: list[tuple[str, CollectSummary]], fmt: str) -> None:
    """One summary per cluster: a line each (table), rows led by the cluster (csv), or a list (json)."""
    rows = [{"cluster": name, **summary.as_dict()} for name, summary in summaries]
    if fmt == "json":
        typer.echo(json.dumps(rows))
    elif fmt == "csv":
        for row in rows:
            row["warnings"] = len(row["warnings"])
        if rows:
            typer.echo(",".join(rows[0]))
        for row in rows:
            typer.echo(",".join("" if v is None else str(v) for v in row.values()))
    else:
        for name, summary in summaries:
            typer.echo(f"cluster {name}: {summary.line()}")
