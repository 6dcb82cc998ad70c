"""One collection run: window from the high-water marks, chunks, bounded concurrent queries,
one transaction per chunk (samples + spec + high-water marks), the DB lock, SIGTERM.

Flow: collect -> store. Nothing here reads analyses.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from capplan import store
from capplan.collect import transform as tf
from capplan.collect.client import ClientOptions, PromClient, TooLarge
from capplan.collect.queries import (
    METRICS,
    MAX_POINTS_PER_SERIES,
    METRICS_BY_KEY,
    REAL_CONTAINERS,
    Chunk,
    Metric,
    align_down,
    align_up,
    batch_namespaces,
    from_epoch,
    plan_chunks,
    render,
    split_range,
    usage_window_ms,
    utc_naive,
)
from capplan.promql import label_matcher
from capplan.errors import CapplanError, NoDataError, SourceError, UsageError

DEFAULT_SINCE = timedelta(days=14)
DEFAULT_STEP = 60
DEFAULT_SPEC_STEP = 300
# One answer holds at most this many points (series x steps): ~10 MB of JSON. Keeps capplan's
# memory flat and the Prometheus far from --query.max-samples (default 50 M).
DEFAULT_MAX_POINTS = 250_000
DEFAULT_CHUNK = timedelta(days=1)
# One chunk's answers together hold at most this many times the per-answer budget (~4 M points,
# a few hundred MB as frames).
CHUNK_BUDGET_FACTOR = 8
# Data at "now" is not scraped yet; stop this far behind the wall clock.
SETTLE = timedelta(seconds=60)


@dataclass
class CollectOptions:
    """Everything a run needs (the CLI fills it from options and the environment)."""

    url: str
    db: str | Path | None = None
    since: timedelta = DEFAULT_SINCE
    start: datetime | None = None
    end: datetime | None = None
    step_seconds: int = DEFAULT_STEP
    spec_step_seconds: int | None = None
    namespaces: list[str] | None = None
    token: str | None = None
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    timeout_seconds: float = 60.0
    retries: int = 3
    backoff_seconds: float = 0.5
    concurrency: int = 2
    wait: bool = False
    max_points_per_query: int = DEFAULT_MAX_POINTS
    chunk: timedelta = DEFAULT_CHUNK
    now: datetime | None = None  # for tests: the wall clock


@dataclass
class CollectSummary:
    """What a run did (the summary line, `--format json`, and collection_runs)."""

    source: str
    status: str = "ok"          # ok, up-to-date, interrupted
    window_start: datetime | None = None
    window_end: datetime | None = None
    collected_until: datetime | None = None
    chunks: int = 0
    chunks_done: int = 0
    series: int = 0
    samples: int = 0
    spec_rows: int = 0
    restarts: int = 0
    queries: int = 0
    seconds: float = 0.0
    query_wait_seconds: float = 0.0   # time spent waiting for answers (the rest is ours)
    warnings: list[str] = field(default_factory=list)
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: ISO 8601 UTC timestamps."""
        out = asdict(self)
        for key in ("window_start", "window_end", "collected_until"):
            if out[key] is not None:
                out[key] = out[key].replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
        out["seconds"] = round(out["seconds"], 2)
        out["query_wait_seconds"] = round(out["query_wait_seconds"], 2)
        return out

    def line(self) -> str:
        """The one-line summary for cron logs."""
        if self.window_start is None or self.status == "up-to-date":
            return f"collect {self.source}: up to date (nothing new until {_iso(self.collected_until)}), {self.queries} queries, {self.seconds:.1f}s"
        return (
            f"collect {self.source} {_iso(self.window_start)}..{_iso(self.collected_until or self.window_end)}: "
            f"{self.status}, {self.chunks_done}/{self.chunks} chunks, {self.series:,} series, {self.samples:,} samples, "
            f"{self.spec_rows:,} spec rows, {self.restarts:,} restarts, {self.queries:,} queries, {self.seconds:.1f}s"
        )


def _iso(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "-"


class StopFlag:
    """Set by SIGTERM (or a caller): finish the current chunk, commit, stop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self, *_: object) -> None:
        self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


ProgressFn = Callable[[int, int, CollectSummary], None]
WarnFn = Callable[[str], None]


def source_key(display_url: str, namespaces: list[str] | None) -> str:
    """High-water marks belong to a source and a namespace filter (a filtered run must not
    advance the marks of an unfiltered one)."""
    return display_url + (f"#namespace={','.join(sorted(set(namespaces)))}" if namespaces else "")


def collect(options: CollectOptions, *, progress: ProgressFn | None = None, warn: WarnFn | None = None,
            stop: StopFlag | None = None) -> CollectSummary:
    """Run one collection. Raises CapplanError subclasses (exit codes) on failure; returns the
    summary on success or after a SIGTERM (status "interrupted", whole chunks committed)."""
    started = time.monotonic()
    _validate(options)
    client = PromClient(ClientOptions(
        url=options.url, token=options.token, ca_file=options.ca_file,
        insecure_skip_tls_verify=options.insecure_skip_tls_verify, timeout_seconds=options.timeout_seconds,
        retries=options.retries, backoff_seconds=options.backoff_seconds, pool_size=max(2, options.concurrency + 1),
    ))
    source = source_key(client.display_url, options.namespaces)
    summary = CollectSummary(source=client.display_url)
    stop = stop or StopFlag()
    warn = warn or (lambda _msg: None)
    restore = _install_sigterm(stop)
    try:
        with store.collection_lock(options.db, wait=options.wait):
            _run(options, client, source, summary, stop, progress, warn)
    finally:
        restore()
        client.close()
        summary.queries = client.queries
        summary.seconds = time.monotonic() - started
    return summary


def _validate(o: CollectOptions) -> None:
    if o.step_seconds < 1:
        raise UsageError("--step must be at least 1s")
    if o.spec_step_seconds is not None and o.spec_step_seconds < 1:
        raise UsageError("--spec-step must be at least 1s")
    if o.concurrency < 1 or o.concurrency > 32:
        raise UsageError("--concurrency must be between 1 and 32")
    if o.timeout_seconds <= 0:
        raise UsageError("--timeout must be positive")
    if o.start is not None and o.end is not None and utc_naive(o.end) < utc_naive(o.start):
        raise UsageError("--end is before --start")
    if o.ca_file and not os.path.isfile(o.ca_file):
        raise UsageError(f"--ca-file {o.ca_file} does not exist")


def _install_sigterm(stop: StopFlag) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop.set)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _window(options: CollectOptions, marks: dict[str, datetime]) -> tuple[datetime, datetime]:
    step = options.step_seconds
    now = utc_naive(options.now or datetime.now(timezone.utc))
    end = align_down(utc_naive(options.end) if options.end else now - SETTLE, step)
    if options.start is not None:
        start = align_up(utc_naive(options.start), step)
    elif marks:
        start = align_down(min(marks.values()), step) + timedelta(seconds=step)
    else:
        start = align_up(end - options.since, step)
    return start, end


def _run(options: CollectOptions, client: PromClient, source: str, summary: CollectSummary, stop: StopFlag,
         progress: ProgressFn | None, warn: WarnFn) -> None:
    marks: dict[str, datetime] = {}
    if store.resolve_db_path(options.db).exists():  # a failed first run must not leave an empty DB behind
        con = store.open_db(options.db)
        try:
            marks = {m.key: ts for m in METRICS if (ts := store.high_water_mark(con, source, m.key)) is not None}
        finally:
            con.close()
    start, end = _window(options, marks)
    summary.collected_until = max(marks.values()) if marks else None
    if start > end:
        summary.status = "up-to-date"
        _record_run(options.db, summary, source, None, None, "ok", "up to date")
        return
    summary.window_start, summary.window_end = start, end
    step = options.step_seconds
    wanted, present, batches, chunks, spec_step, scrape = _prepare(options, client, start, end, summary, warn)
    run_id = _record_run(options.db, summary, source, start, end, "running", None)
    summary.run_id = run_id
    seen_series: set[tuple[str, str, str, str]] = set()
    status, message = "failed", None
    try:
        with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="capplan-query") as pool:
            pending: Pending | None = None
            try:
                pending = _submit_chunk(pool, client, chunks[0], wanted, marks, batches, step, spec_step, scrape)
                for index, chunk in enumerate(chunks):
                    waited = time.monotonic()
                    answers = _gather(pending)
                    summary.query_wait_seconds += time.monotonic() - waited
                    # ask for the next chunk while this one is transformed and written (the
                    # Prometheus works while we do; at most two chunks of answers are held)
                    pending = None
                    if index + 1 < len(chunks) and not stop:
                        pending = _submit_chunk(pool, client, chunks[index + 1], wanted, marks, batches, step, spec_step,
                                                scrape)
                    frames = _frames(answers, chunk, spec_step, present)
                    del answers
                    usage = frames.pop("usage")
                    seen_series.update(usage.select("namespace", "pod", "container", "node").unique().iter_rows())
                    _commit(options.db, source, chunk, frames, usage, summary)
                    summary.chunks_done += 1
                    summary.collected_until = chunk.end
                    summary.series = len(seen_series)
                    summary.queries = client.queries
                    if progress:
                        progress(summary.chunks_done, summary.chunks, summary)
                    if stop:
                        break
            finally:
                _cancel(pending)  # a prefetched chunk is dropped on SIGTERM or failure
        if summary.chunks_done < summary.chunks:
            status, message = "interrupted", "stopped by SIGTERM after a whole chunk"
            summary.status = "interrupted"
        else:
            status = "ok"
    except CapplanError as exc:
        message = str(exc)
        raise
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary.queries = client.queries
        _finish_run(options.db, run_id, summary, status, message)


@dataclass
class QueryPlan:
    """What a run would ask, without writing anything (for benchmarks and dry runs)."""

    jobs: list[tuple[str, str, datetime, datetime, int]]
    chunks: list[Chunk]
    batches: list[list[str] | None]
    planning_queries: int


def _prepare(options: CollectOptions, client: PromClient, start: datetime, end: datetime, summary: CollectSummary,
             warn: WarnFn) -> tuple[list[Metric], set[str] | None, list[list[str] | None], list[Chunk], int, int | None]:
    """Which metrics exist (warning about absent ones), the namespace batches and the chunks."""
    step = options.step_seconds
    spec_step = options.spec_step_seconds or max(step, DEFAULT_SPEC_STEP)
    present = _present_metrics(client, start - timedelta(seconds=spec_step), end, warn)
    for metric in METRICS:
        if present is not None and metric.key not in present:
            message = f"{metric.key} is absent from {client.display_url}: capplan will lack {metric.lacks}"
            summary.warnings.append(message)
            warn(message)
    if present is not None and not any(m.key in present for m in METRICS):
        raise NoDataError(
            f"{client.display_url} has none of the kube-state-metrics or cAdvisor metrics capplan needs between "
            f"{_iso(start)} and {_iso(end)} (is this the Prometheus that scrapes the cluster?)"
        )
    wanted = [m for m in METRICS if present is None or m.key in present]
    batches, chunk_steps = _plan_batches(client, options, start, end, present, spec_step)
    cap_steps = max(1, int(options.chunk.total_seconds() // step))
    chunks = plan_chunks(start, end, step, min(chunk_steps, cap_steps))
    summary.chunks = len(chunks)
    scrape = None
    if present is None or "container_memory_working_set_bytes" in present:
        scrape = _scrape_interval(client, end, options.namespaces)
        if scrape and scrape > step:
            message = (f"--step {step}s is finer than the {scrape}s scrape interval of cAdvisor series at "
                       f"{client.display_url}: CPU is averaged over {2 * scrape}s windows, memory peaks over {scrape}s")
            summary.warnings.append(message)
            warn(message)
    return wanted, present, batches, chunks, spec_step, scrape


def _scrape_interval(client: PromClient, at: datetime, namespaces: list[str] | None) -> int | None:
    """The median cAdvisor scrape interval near `at` (samples in a 10-minute window), or None."""
    window_ms = 600_000 - 1  # (at-10m, at]: aligned scrapes are not counted twice
    promql = (f"quantile(0.5, count_over_time(container_memory_working_set_bytes{{{REAL_CONTAINERS}"
              f"{_ns_sel(namespaces)}}}[{window_ms}ms]))")
    try:
        result = client.query(promql, at)
        count = float(result[0]["value"][1]) if result else 0.0
    except (SourceError, KeyError, IndexError, TypeError, ValueError):
        return None
    if not count or count != count:  # no data, or NaN
        return None
    return max(1, int(round(600 / count)))


def plan_queries(options: CollectOptions) -> QueryPlan:
    """The range queries a first run over options' window would send (no DB access, no writes)."""
    client = PromClient(ClientOptions(url=options.url, token=options.token, ca_file=options.ca_file,
                                      insecure_skip_tls_verify=options.insecure_skip_tls_verify,
                                      timeout_seconds=options.timeout_seconds, retries=options.retries))
    try:
        start, end = _window(options, {})
        summary = CollectSummary(source=client.display_url)
        wanted, _present, batches, chunks, spec_step, scrape = _prepare(options, client, start, end, summary,
                                                                        lambda _m: None)
        jobs = [job for chunk in chunks
                for job in chunk_jobs(chunk, wanted, {}, batches, options.step_seconds, spec_step, scrape)]
        return QueryPlan(jobs=jobs, chunks=chunks, batches=batches, planning_queries=client.queries)
    finally:
        client.close()


def _present_metrics(client: PromClient, start: datetime, end: datetime, warn: WarnFn) -> set[str] | None:
    """Metric names the source holds over the window (one cheap index lookup); None when the
    source does not support the lookup (then every metric is queried and absences stay silent)."""
    try:
        names = client.label_values("__name__", start, end)
    except SourceError as exc:
        # only an API that lacks the endpoint is tolerated; auth, 5xx and network failures are fatal
        if getattr(exc, "status", 0) not in (400, 404, 405, 501):
            raise
        warn(f"cannot list metric names ({exc}); querying every metric")
        return None
    return {str(n) for n in names}


def _plan_batches(client: PromClient, options: CollectOptions, start: datetime, end: datetime,
                  present: set[str] | None, spec_step: int) -> tuple[list[list[str] | None], int]:
    """Namespace batches and chunk length (in steps) so one answer stays under the point budget
    and one chunk's answers (all metrics) under CHUNK_BUDGET_FACTOR times it: memory stays flat
    whatever the cluster size.

    Series are counted per namespace from the index (/api/v1/series on the working-set and
    kube_pod_info series over the window: no samples are read)."""
    counts: dict[str, int] = {}
    for name, match in (("container_memory_working_set_bytes",
                         f"container_memory_working_set_bytes{{{REAL_CONTAINERS}{_ns_sel(options.namespaces)}}}"),
                        ("kube_pod_status_phase", f"kube_pod_status_phase{{{_ns_sel(options.namespaces, lead=False)}}}")):
        if present is not None and name not in present:
            continue
        seen: set[tuple[str, str, str]] = set()
        try:
            found = client.series(match, start, end)
        except SourceError as exc:
            # some gateways limit or lack the series API: plan by time alone; answers the server
            # finds too large are still halved (_range_split)
            if getattr(exc, "status", 0) not in (400, 404, 405, 422, 501):
                raise
            return [options.namespaces or None], min(
                int((end - start).total_seconds() // options.step_seconds) + 1,
                max(1, int(options.chunk.total_seconds() // options.step_seconds)), MAX_POINTS_PER_SERIES - 1)
        for labels in found:
            ns = labels.get("namespace", "")
            key = (ns, labels.get("pod", ""), labels.get("container", ""))
            if key in seen:  # the same container under several cgroup ids counts once after `by`
                continue
            seen.add(key)
            counts[ns] = counts.get(ns, 0) + 1
    total = sum(counts.values())
    largest = max(counts.values(), default=1)
    budget = options.max_points_per_query
    all_steps = int((end - start).total_seconds() // options.step_seconds) + 1
    steps = min(all_steps, max(1, int(options.chunk.total_seconds() // options.step_seconds)),
                MAX_POINTS_PER_SERIES - 1)
    # points per step over all metrics: 2 usage series per container, ~6 spec series per
    # container or pod at the spec step
    per_step = max(1, total) * (2 + 6 * options.step_seconds / spec_step)
    steps = max(1, min(steps, int(CHUNK_BUDGET_FACTOR * budget // per_step)))
    if total * steps <= budget or total <= 0:
        return [options.namespaces or None], steps
    # shorter chunks first (down to what the largest namespace allows), then namespace batches
    steps = max(1, min(steps, budget // max(1, largest)))
    if total * steps <= budget:
        return [options.namespaces or None], steps
    return list(batch_namespaces(counts, max(largest, budget // steps))), steps


def _ns_sel(namespaces: list[str] | None, lead: bool = True) -> str:
    if not namespaces:
        return ""
    return ("," if lead else "") + label_matcher("namespace", namespaces)


def chunk_jobs(chunk: Chunk, wanted: list[Metric], marks: dict[str, datetime], batches: list[list[str] | None],
               step: int, spec_step: int, scrape: int | None = None) -> list[tuple[str, str, datetime, datetime, int]]:
    """The range queries of one chunk: (metric key, PromQL, start, end, step)."""
    spec_start, spec_end = align_up(chunk.start, spec_step), align_down(chunk.end, spec_step)
    jobs: list[tuple[str, str, datetime, datetime, int]] = []
    for metric in wanted:
        if metric.key in marks and marks[metric.key] >= chunk.end:
            continue  # this metric is already stored up to here
        if metric.kind == "usage":
            window, lo, hi, at_step = usage_window_ms(metric, step, scrape), chunk.start, chunk.end, step
        else:
            if spec_start > spec_end:
                continue
            window, lo, hi, at_step = spec_step * 1000 - 1, spec_start, spec_end, spec_step
            if metric.key == "kube_pod_container_status_restarts_total":
                lo = spec_start - timedelta(seconds=spec_step)  # a baseline to compare the first point with
        for batch in ([None] if metric.kind == "node" else batches):
            jobs.append((metric.key, render(metric, batch, window), lo, hi, at_step))
    return jobs


Pending = dict[Future, str]
Answer = pl.DataFrame | list[dict[str, Any]]


def _submit_chunk(pool: ThreadPoolExecutor, client: PromClient, chunk: Chunk, wanted: list[Metric],
                  marks: dict[str, datetime], batches: list[list[str] | None], step: int, spec_step: int,
                  scrape: int | None) -> Pending:
    """Queue every query of one chunk; the pool runs at most `concurrency` at once."""
    jobs = chunk_jobs(chunk, wanted, marks, batches, step, spec_step, scrape)
    return {pool.submit(_fetch, client, METRICS_BY_KEY[key], promql, lo, hi, at_step): key
            for key, promql, lo, hi, at_step in jobs}


def _fetch(client: PromClient, metric: Metric, promql: str, lo: datetime, hi: datetime, step: int) -> Answer:
    """One query, turned into a compact frame at once (the decoded JSON is ~5x larger)."""
    results = _range_split(client, promql, lo, hi, step)
    if metric.labels is None:
        return results
    return tf.to_frame(results, list(metric.labels), dict(metric.aliases) or None)


def _gather(futures: Pending) -> dict[str, Answer]:
    """Wait for a chunk's queries; answers merged per metric. The first failure cancels the rest."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in futures:
        if future in done and future.exception() is not None:
            _cancel(futures)
            raise future.exception()  # type: ignore[misc]
    parts: dict[str, list[Answer]] = {}
    for future, key in futures.items():
        parts.setdefault(key, []).append(future.result())
    answers: dict[str, Answer] = {}
    for key, items in parts.items():
        if isinstance(items[0], pl.DataFrame):
            answers[key] = items[0] if len(items) == 1 else pl.concat(items)
        else:
            answers[key] = [r for item in items for r in item]
    return answers


def _cancel(futures: Pending | None) -> None:
    for future in futures or ():
        future.cancel()


def _range_split(client: PromClient, promql: str, lo: datetime, hi: datetime, step: int) -> list[dict[str, Any]]:
    """A range query, halved in time while the server says the answer is too large."""
    try:
        return client.query_range(promql, lo, hi, step)
    except TooLarge as exc:
        halves = split_range(lo, hi, step)
        if not halves:
            raise SourceError(
                f"{client.display_url} refused even a one-step query as too large ({exc}); "
                "collect fewer namespaces at once (--namespace) or raise --query.max-samples"
            ) from None
        return [r for a, b in halves for r in _range_split(client, promql, a, b, step)]


def _frames(answers: dict[str, Answer], chunk: Chunk, spec_step: int,
            present: set[str] | None) -> dict[str, pl.DataFrame]:
    """The store frames of one chunk."""

    def long(key: str, labels: list[str] | None = None) -> pl.DataFrame:
        found = answers.get(key)
        if isinstance(found, pl.DataFrame):
            return found
        metric = METRICS_BY_KEY[key]
        return tf.to_frame([], list(metric.labels or ()), dict(metric.aliases) or None)

    def maybe(key: str, labels: list[str] | None = None, aliases: dict[str, str] | None = None) -> pl.DataFrame | None:
        # None when the source lacks the metric (the column stays NULL: unknown, not "none")
        if present is not None and key not in present:
            return None
        return long(key)

    usage_keys = ["namespace", "pod", "container", "node"]
    res = ["namespace", "pod", "container", "resource"]
    pod_info = long("kube_pod_info", ["namespace", "pod", "node", "priority_class"])
    usage = tf.usage_frame(long("container_cpu_usage_seconds_total", usage_keys),
                           long("container_memory_working_set_bytes", usage_keys))
    usage = tf.fill_usage_nodes(usage, pod_info)
    frames = {
        "usage": usage,
        "nodes": tf.nodes_frame(long("kube_node_status_capacity", ["node", "resource"]),
                                long("kube_node_status_allocatable", ["node", "resource"]),
                                None if present is not None and "kube_node_labels" not in present
                                else list(answers.get("kube_node_labels", [])),
                                maybe("kube_node_spec_taint", ["node", "key", "value", "effect"], {"value": "taint_value"}), spec_step),
        "pods": tf.pods_frame(pod_info, long("kube_pod_owner", ["namespace", "pod", "owner_kind", "owner_name"]),
                              long("kube_pod_status_qos_class", ["namespace", "pod", "qos_class"]),
                              long("kube_pod_status_phase", ["namespace", "pod", "phase"]), spec_step),
        "containers": tf.containers_frame(
            long("kube_pod_container_resource_requests", res), long("kube_pod_container_resource_limits", res),
            long("kube_pod_init_container_resource_requests", res), long("kube_pod_init_container_resource_limits", res),
            long("kube_pod_container_info", ["namespace", "pod", "container"]),
            long("kube_pod_init_container_info", ["namespace", "pod", "container", "restart_policy"]), spec_step),
        "owners": tf.owners_frame(long("kube_replicaset_owner", ["namespace", "replicaset", "owner_kind", "owner_name"]),
                                  long("kube_job_owner", ["namespace", "job_name", "owner_kind", "owner_name"]), spec_step),
        "workloads": tf.workloads_frame(long("kube_deployment_spec_replicas", ["namespace", "deployment"]),
                                        maybe("kube_deployment_spec_strategy_rollingupdate_max_surge",
                                              ["namespace", "deployment"]), spec_step),
        "hpas": tf.hpas_frame(long("kube_horizontalpodautoscaler_spec_target_metric",
                                   ["namespace", "horizontalpodautoscaler", "metric_name"]),
                              maybe("kube_horizontalpodautoscaler_info",
                                    ["namespace", "horizontalpodautoscaler", "scaletargetref_kind", "scaletargetref_name"]),
                              spec_step),
        "resource_quotas": tf.quotas_frame(long("kube_resourcequota", ["namespace", "resourcequota", "resource"]),
                                           spec_step),
        "restarts": tf.restarts_frame(long("kube_pod_container_status_restarts_total", ["namespace", "pod", "container"]),
                                      long("kube_pod_container_status_last_terminated_reason",
                                           ["namespace", "pod", "container", "reason"]),
                                      align_up(chunk.start, spec_step) - timedelta(microseconds=1)),
    }
    return frames


def _commit(db: str | Path | None, source: str, chunk: Chunk, frames: dict[str, pl.DataFrame], usage: pl.DataFrame,
            summary: CollectSummary) -> None:
    """One transaction: the chunk's spec, restarts, usage and every metric's high-water mark."""
    con = store.open_db(db)
    try:
        with store.transaction(con):
            spec_rows = 0
            for table in store.SPEC_TABLES:
                frame = frames.get(table)
                if frame is not None and not frame.is_empty():
                    spec_rows += store.write_spec(con, table, frame)
            restarts = frames.get("restarts")
            restart_rows = store.write_restarts(con, restarts) if restarts is not None and not restarts.is_empty() else 0
            samples = store.write_usage(con, usage)
            # every metric's mark moves with the chunk (one statement: the upsert per metric is slow)
            store.set_high_water_marks(con, source, [m.key for m in METRICS], chunk.end)
        summary.spec_rows += spec_rows
        summary.restarts += restart_rows
        summary.samples += samples
    finally:
        con.close()


def _record_run(db: str | Path | None, summary: CollectSummary, source: str, start: datetime | None,
                end: datetime | None, status: str, message: str | None) -> int:
    con = store.open_db(db)
    try:
        with store.transaction(con):
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            run_id = store.start_collection_run(con, source=source, now=now, window_start=start, window_end=end,
                                                queries=summary.queries, status=status, message=message)
        return run_id
    finally:
        con.close()


def _finish_run(db: str | Path | None, run_id: int, summary: CollectSummary, status: str, message: str | None) -> None:
    try:
        con = store.open_db(db)
    except CapplanError:
        return  # the run row stays "running"; the data committed so far is consistent anyway
    try:
        with store.transaction(con):
            store.finish_collection_run(
                con, run_id, finished_at=datetime.now(timezone.utc).replace(tzinfo=None), series=summary.series,
                samples=summary.samples, queries=summary.queries, status=status,
                message=(message or "")[:500] or None, window_end=summary.collected_until)
    finally:
        con.close()


__all__ = ["CollectOptions", "CollectSummary", "StopFlag", "collect", "source_key", "from_epoch", "METRICS_BY_KEY"]
