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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from capplan import store
from capplan.collect import matrix
from capplan.collect import transform as tf
from capplan.collect.client import Body, ClientOptions, PromClient, TooLarge
from capplan.collect.matrix import Matrix
from capplan.collect.queries import (
    COARSE_SECONDS,
    MAX_POINTS_PER_SERIES,
    METRICS,
    METRICS_BY_KEY,
    OPTIONAL_QUIET,
    REAL_CONTAINERS,
    USAGE_KEYS,
    USAGE_SOURCE_LABELS,
    Chunk,
    Metric,
    align_down,
    align_up,
    batch_namespaces,
    epoch,
    from_epoch,
    plan_chunks,
    render,
    render_coarse,
    render_raw,
    render_raw_group,
    split_range,
    utc_naive,
)
from capplan.errors import BadInputError, CapplanError, NoDataError, SourceError, UsageError
from capplan.promql import label_matcher

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
    usage_selector: str | None = None  # extra label matchers for cAdvisor series (which scrape to use)
    cluster: str = store.DEFAULT_CLUSTER  # the cluster the source's series belong to (schema 005)
    # A central Prometheus (Thanos, Mimir) holding many clusters: the label naming them; each value
    # is collected as its own cluster (capplan.collect.fleet), every query carrying `scope`.
    cluster_label: str | None = None
    scope: str = ""  # label matchers every selector carries, e.g. cluster="prod-eu" (escaped)
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
                out[key] = out[key].replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
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
        db_path = store.resolve_db_path(options.db)
        if not db_path.parent.is_dir():  # the local mistake first, before any network call
            raise BadInputError(f"--db {db_path}: the folder {db_path.parent} does not exist")
        probed = not db_path.exists()
        if probed:
            client.probe()  # a wrong URL fails here, before a lock file or a database exists
        with store.collection_lock(options.db, wait=options.wait), _Writer(options.db) as writer:
            _run(options, client, source, summary, stop, progress, warn, probed, writer)
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
    if o.usage_selector is not None and (not o.usage_selector.strip() or any(c in o.usage_selector for c in "{}[]")):
        raise UsageError("--usage-selector takes label matchers such as 'job=\"kubelet\",metrics_path=\"/metrics/cadvisor\"' "
                         "(no braces)")


def _install_sigterm(stop: StopFlag) -> Callable[[], None]:
    """SIGTERM sets `stop` (the run ends after the current chunk); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop.set)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)
    return restore


def _window(options: CollectOptions, marks: dict[str, datetime]) -> tuple[datetime, datetime]:
    step = options.step_seconds
    now = utc_naive(options.now or datetime.now(UTC))
    end = align_down(utc_naive(options.end) if options.end else now - SETTLE, step)
    if options.start is not None:
        start = align_up(utc_naive(options.start), step)
    elif marks:
        start = align_down(min(marks.values()), step) + timedelta(seconds=step)
    else:
        start = align_up(end - options.since, step)
    return start, end


@dataclass
class RunState:
    """What one run learns once and uses for every chunk (and keeps for later runs)."""

    cadvisor_scrape_seconds: float | None = None   # median time between cAdvisor samples
    ksm_scrape_seconds: float | None = None        # median time between kube-state-metrics samples
    usage_selector: str = ""                       # label matchers picking one cAdvisor scrape
    stored: dict[str, tuple[float | None, str]] = field(default_factory=dict)  # exporter -> as stored
    warned: set[str] = field(default_factory=set)
    coarse_seconds: int = 0                        # 0: declared state read at the spec step (short runs)
    # metric -> its coarse windows over the run (last value per window) that held one value, and
    # the windows to read again at the spec step (tf.kept_windows)
    coarse: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = field(default_factory=dict)
    known_series: int | None = None                # containers already stored (incremental runs plan with it)
    scope: str = ""                                # label matchers of one cluster on a central Prometheus

    def raw_lead_seconds(self, step: int) -> float:
        """How far before a chunk raw samples are read: the previous sample of every series."""
        return max(2 * step, 3 * (self.cadvisor_scrape_seconds or 300))

    def declared_raw(self, spec_step: int) -> bool:
        """Read declared state as raw samples rather than as the spec-step query: when
        kube-state-metrics is scraped at most once per spec step, the raw answer holds no more
        points, and the server skips evaluating `last_over_time` and `max by` at every step
        (bench/collect_bench.py's M data, one hour at a 5-minute scrape and spec step: 182 ms of
        Prometheus CPU for every declared metric read raw against 306 ms for the spec-step queries).
        At a finer scrape (kube-state-metrics' usual 30 s) the spec-step query stays."""
        return self.ksm_scrape_seconds is not None and self.ksm_scrape_seconds >= spec_step * RAW_DECLARED_MIN_STEP_FRACTION

    def max_gap_seconds(self, step: int) -> float:
        """Two samples further apart than this belong to a series that was gone in between."""
        return max(2 * step, 3 * (self.cadvisor_scrape_seconds or step))


# A run whose writes left at most this much write-ahead log closes the database without the
# checkpoint DuckDB makes on close: the next open (a reader's, the next run's) replays the log, and
# the run that takes it past this size checkpoints it all. On bench/collect_bench.py's M next hour
# the checkpoint was 45-107 ms of CPU (plus its fsync) for a 387 KB log, whose replay costs a
# read-only open ~10 ms; at 1 MiB every open replays ~30 ms at most, and an hourly run at M
# checkpoints every third hour (one of ~4 MB at L's ten times the containers: every hour, as before).
WAL_KEPT_BYTES = 1 << 20


def _wal_bytes(db: str | Path | None) -> int:
    """The size of the database's write-ahead log (0 when there is none)."""
    try:
        return os.path.getsize(f"{store.resolve_db_path(db)}.wal")
    except OSError:
        return 0


class _Writer:
    """The run's writer connection to the database, opened once: an hourly run (one chunk) reads
    its marks, records its start and commits its chunk and its end on one connection, where it
    opened the file five times (a read-only look, then a writer's probe and open for the run's
    row and again for the chunk: ~0.1 s of CPU on bench/collect_bench.py's M next hour, and each
    close after a write checkpoints). A run of several chunks lets the connection go after
    recording its start, so readers get in between chunks as before."""

    def __init__(self, db: str | Path | None) -> None:
        self.db = db
        self.con: Any = None
        self.refreshed = False

    def open(self, refresh_sums: bool = True) -> Any:
        """The connection (opening it, or creating the database, if need be); with `refresh_sums`
        the sums a killed run left pending are made current first, as every writer's open does."""
        if self.con is None:
            self.con = store.open_db(self.db, refresh_sums=refresh_sums)
            self.refreshed = refresh_sums
        elif refresh_sums and not self.refreshed:
            store.refresh_node_usage(self.con)
            self.refreshed = True
        return self.con

    def release(self) -> None:
        if self.con is not None:
            con, self.con = self.con, None
            try:
                if _wal_bytes(self.db) <= WAL_KEPT_BYTES:
                    con.execute("PRAGMA disable_checkpoint_on_shutdown")
            finally:
                con.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _run(options: CollectOptions, client: PromClient, source: str, summary: CollectSummary, stop: StopFlag,
         progress: ProgressFn | None, warn: WarnFn, probed: bool, writer: _Writer) -> None:
    marks: dict[str, datetime] = {}
    state = RunState(usage_selector=options.usage_selector or "", scope=options.scope)
    if store.resolve_db_path(options.db).exists():  # a failed first run must not leave an empty DB behind
        # as a writer already, for the run's row and chunk later; the pending sums are refreshed
        # where the run's first write opened the database before (the source answered by then)
        con = writer.open(refresh_sums=False)
        marks = store.high_water_marks(con, source, [m.key for m in METRICS], options.cluster)
        state.stored = _stored_sources(con, source, options.cluster)
        if marks:
            state.known_series = _known_series(con, options.cluster, options.namespaces)
    if not marks and not probed:
        client.probe()  # a source new to this DB: check it answers like a Prometheus before writing
    cadvisor = state.stored.get("cadvisor")
    if cadvisor:
        state.cadvisor_scrape_seconds = cadvisor[0]
        if options.usage_selector is None:
            state.usage_selector = cadvisor[1]
    if state.stored.get("kube-state-metrics"):
        state.ksm_scrape_seconds = state.stored["kube-state-metrics"][0]
    start, end = _window(options, marks)
    summary.collected_until = max(marks.values()) if marks else None
    if start > end:
        summary.status = "up-to-date"
        _record_run(writer.open(), summary, source, None, None, "ok", "up to date", options.cluster)
        return
    summary.window_start, summary.window_end = start, end
    step = options.step_seconds
    wanted, present, batches, chunks, spec_step = _prepare(options, client, start, end, summary, warn, state,
                                                           first_run=not marks)
    if state.ksm_scrape_seconds is None:
        state.ksm_scrape_seconds = _ksm_scrape_seconds(client, present, start, end, state.scope)
    run_id = _record_run(writer.open(), summary, source, start, end, "running", None, options.cluster)
    summary.run_id = run_id
    if len(chunks) > 1:
        writer.release()
    seen_series: set[tuple[str, str, str, str]] = set()
    status, message = "failed", None
    finished = False  # the run's end recorded with the last chunk

    def note(message: str) -> None:
        if message not in state.warned:
            state.warned.add(message)
            summary.warnings.append(message)
            warn(message)

    try:
        with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="capplan-query") as pool:
            pending: Pending | None = None
            _read_coarse(pool, client, wanted, batches, start, end, spec_step, state)
            try:
                pending = _submit_chunk(pool, client, chunks[0], wanted, marks, batches, step, spec_step, state)
                for index, chunk in enumerate(chunks):
                    assert pending is not None  # asked for before the loop or at the end of the previous round
                    waited = time.monotonic()
                    answers = _gather(pending)
                    summary.query_wait_seconds += time.monotonic() - waited
                    pending = None
                    if index == 0:
                        _learn(answers, state, step, client.display_url, note)
                    frames = _frames(answers, chunk, step, spec_step, present, state, note)
                    del answers
                    # ask for the next chunk while this one is written (the Prometheus works while
                    # DuckDB does). Not earlier: decoding the next answers while this chunk's frames
                    # were built held both at once (bench/collect_bench.py's M first run: 689 ->
                    # 523 MiB peak over 3 days, same wall time).
                    if index + 1 < len(chunks) and not stop:
                        pending = _submit_chunk(pool, client, chunks[index + 1], wanted, marks, batches, step,
                                                spec_step, state)
                    usage = frames.pop("usage")
                    seen_series.update(usage.select("namespace", "pod", "container", "node").unique().iter_rows())
                    # the last chunk's connection also records the run's end (one DuckDB open less)
                    last = index + 1 == len(chunks)
                    _commit(options.db, source, chunk, frames, usage, summary, state if index == 0 else None,
                            options.cluster, finish=(run_id, len(seen_series), client) if last else None,
                            con=writer.con)
                    finished = last
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
        if not finished:
            writer.release()  # a failed write may have left it unusable: the end gets a fresh one
            _finish_run(options.db, run_id, summary, status, message)


# Small kube-state-metrics metrics (one series per node or Deployment) to measure its scrape interval on.
KSM_PROBE_METRICS = ("kube_node_info", "kube_node_status_capacity", "kube_node_status_allocatable",
                     "kube_deployment_spec_replicas", "kube_pod_info")
KSM_PROBE_SPAN = timedelta(hours=1)


def _ksm_scrape_seconds(client: PromClient, present: set[str] | None, start: datetime, end: datetime,
                        scope: str) -> float | None:
    """kube-state-metrics' scrape interval: the median time between consecutive raw samples of one
    small metric in the hour before `end` (or the run's window, when shorter). Once per source: it
    is stored with the first chunk (collector_sources) and read back by later runs."""
    for key in KSM_PROBE_METRICS:
        if present is not None and key not in present:
            continue
        lo = max(start, end - KSM_PROBE_SPAN)
        span_ms = int(round((epoch(end) - epoch(lo)) * 1000))
        if span_ms <= 0:
            return None
        try:
            results = client.query(render_raw(METRICS_BY_KEY[key], None, span_ms, scope), end)
        except (SourceError, TooLarge):
            return None  # the run goes on with spec-step queries
        measured = tf.median_interval_seconds(tf.raw_frame(results, []))
        if measured:
            return measured
    return None


def _stored_sources(con: Any, source: str, cluster: str) -> dict[str, tuple[float | None, str]]:
    rows = con.execute("SELECT exporter, scrape_seconds, selector FROM collector_sources WHERE cluster = ? AND source = ?",
                       [cluster, source]).fetchall()
    return {exporter: (seconds, selector or "") for exporter, seconds, selector in rows}


@dataclass
class QueryPlan:
    """What a run would ask, without writing anything (for benchmarks and dry runs)."""

    jobs: list[Job]
    chunks: list[Chunk]
    batches: list[list[str] | None]
    planning_queries: int


def _prepare(options: CollectOptions, client: PromClient, start: datetime, end: datetime, summary: CollectSummary,
             warn: WarnFn, state: RunState, first_run: bool = True) -> tuple[list[Metric], set[str] | None, list[list[str] | None], list[Chunk], int]:
    """Which metrics exist (warning about absent ones), the namespace batches and the chunks."""
    step = options.step_seconds
    spec_step = options.spec_step_seconds or max(step, DEFAULT_SPEC_STEP)
    present = _present_metrics(client, start - timedelta(seconds=spec_step), end, warn, options.scope)

    def note(message: str) -> None:
        state.warned.add(message)
        summary.warnings.append(message)
        warn(message)

    for metric in METRICS:
        if present is not None and metric.key not in present and metric.key not in OPTIONAL_QUIET:
            if metric.key == "kube_node_labels":
                note(f"kube_node_labels is absent from {client.display_url}: kube-state-metrics exports node labels only "
                     "for the labels named in its --metric-labels-allowlist (e.g. --metric-labels-allowlist="
                     "nodes=[node.kubernetes.io/instance-type,topology.kubernetes.io/zone,...]; none by default since "
                     "2.10): capplan will lack node labels (node pools, zones, instance types)")
                continue
            note(f"{metric.key} is absent from {client.display_url}: capplan will lack {metric.lacks}")
    if present is not None and not any(m.key in present for m in METRICS):
        raise NoDataError(
            f"{client.display_url} has none of the kube-state-metrics or cAdvisor metrics capplan needs between "
            f"{_iso(start)} and {_iso(end)} (is this the Prometheus that scrapes the cluster?)"
        )
    wanted = [m for m in METRICS if present is None or m.key in present]
    if first_run:  # scrape-config checks once per source (an hourly run should stay a handful of queries)
        _check_labels(client, options, end, present, note)
    batches, chunk_steps = _plan_batches(client, options, start, end, present, spec_step, state)
    cap_steps = max(1, int(options.chunk.total_seconds() // step))
    chunks = plan_chunks(start, end, step, min(chunk_steps, cap_steps))
    summary.chunks = len(chunks)
    return wanted, present, batches, chunks, spec_step


def _check_labels(client: PromClient, options: CollectOptions, end: datetime, present: set[str] | None,
                  note: Callable[[str], None]) -> None:
    """Scrape-config problems that make tables silently wrong, checked in one instant query over
    the hour before `end`: kube-state-metrics scraped without honor_labels (its labels arrive as
    exported_namespace, exported_pod...) and containerd's empty `container` label on cAdvisor series."""
    checks = []
    scope = f",{options.scope}" if options.scope else ""
    if present is None or "kube_pod_info" in present:
        checks.append(("exported", f'count(last_over_time(kube_pod_info{{exported_namespace!=""{scope}}}[1h]))'))
    if present is None or "container_memory_working_set_bytes" in present:
        checks.append(("named", "count by (node) (last_over_time(container_memory_working_set_bytes"
                                f"{{{REAL_CONTAINERS}{scope}}}[1h]))"))
        checks.append(("unnamed", 'count by (node) (last_over_time(container_memory_working_set_bytes{container="",image!="",'
                                  f'image!~".*pause.*"{scope}}}[1h]))'))
    if not checks:
        return
    promql = " or ".join(f'label_replace({q}, "check", "{name}", "", "")' for name, q in checks)
    try:
        result = client.query(promql, end)
    except SourceError:
        return  # a gateway that refuses the check leaves the run as it was
    found: dict[str, dict[str, float]] = {}
    for r in result:
        if r.get("value"):
            found.setdefault(r["metric"].get("check", ""), {})[r["metric"].get("node", "")] = float(r["value"][1])
    if sum(found.get("exported", {}).values()) > 0:
        note(f"kube-state-metrics series at {client.display_url} carry exported_namespace/exported_pod labels: the "
             "scrape config lacks `honor_labels: true`, so `namespace` and `pod` name kube-state-metrics' own pod and "
             "every spec table would be wrong; set honor_labels: true on the kube-state-metrics scrape job")
    broken = sorted(set(found.get("unnamed", {})) - set(found.get("named", {})))
    if broken:
        note(f"cAdvisor series at {client.display_url} on {len(broken)} node(s) (e.g. {broken[0] or '(no node label)'}) "
             "have an empty `container` label although they belong to containers (an image is set): the "
             "containerd/cAdvisor label regression; capplan cannot tell those containers apart and stores no usage for "
             "them (upgrade containerd or the kubelet on those nodes)")


def _present_metrics(client: PromClient, start: datetime, end: datetime, warn: WarnFn,
                     scope: str = "") -> set[str] | None:
    """Metric names the source holds over the window (one cheap index lookup), of one cluster's
    series with `scope`; None when the source does not support the lookup (then every metric is
    queried and absences stay silent)."""
    try:
        names = client.label_values("__name__", start, end, match=[f"{{{scope}}}"] if scope else None)
    except SourceError as exc:
        # only an API that lacks the endpoint is tolerated; auth, 5xx and network failures are fatal
        if getattr(exc, "status", 0) not in (400, 404, 405, 501):
            raise
        warn(f"cannot list metric names ({exc}); querying every metric")
        return None
    return {str(n) for n in names}


def plan_queries(options: CollectOptions) -> QueryPlan:
    """The first-level queries a first run over options' window would send (no DB access, no writes)."""
    client = PromClient(ClientOptions(url=options.url, token=options.token, ca_file=options.ca_file,
                                      insecure_skip_tls_verify=options.insecure_skip_tls_verify,
                                      timeout_seconds=options.timeout_seconds, retries=options.retries))
    try:
        start, end = _window(options, {})
        summary = CollectSummary(source=client.display_url)
        state = RunState(usage_selector=options.usage_selector or "")
        wanted, _present, batches, chunks, spec_step = _prepare(options, client, start, end, summary,
                                                                lambda _m: None, state)
        jobs = [job for chunk in chunks
                for job in chunk_jobs(chunk, wanted, {}, batches, options.step_seconds, spec_step, state)]
        return QueryPlan(jobs=jobs, chunks=chunks, batches=batches, planning_queries=client.queries)
    finally:
        client.close()


def _known_series(con: Any, cluster: str, namespaces: list[str] | None) -> int:
    """Containers (namespace, pod, container) of `cluster` the store holds (within `namespaces`)."""
    sql = "SELECT count(*) FROM series WHERE cluster = ?"
    params: list[Any] = [cluster]
    if namespaces:
        sql += " AND namespace IN (SELECT unnest(?))"
        params.append(sorted(set(namespaces)))
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


# An incremental run plans with the stored container count times this (new pods may have come up
# since the last run) and skips the /api/v1/series count when everything then fits one answer. A
# plan only splits queries, never changes a number; an hour with more than this growth merely
# holds a larger answer (and a server that finds it too large gets it halved, _raw_split).
KNOWN_SERIES_MARGIN = 2


def _plan_batches(client: PromClient, options: CollectOptions, start: datetime, end: datetime,
                  present: set[str] | None, spec_step: int, state: RunState) -> tuple[list[list[str] | None], int]:
    """Namespace batches and chunk length (in steps) so one answer stays under the point budget
    and one chunk's answers (all metrics) under CHUNK_BUDGET_FACTOR times it: memory stays flat
    whatever the cluster size.

    Series are counted per namespace from the index (/api/v1/series on the working-set and
    kube_pod_status_phase series over the window: no samples are read), except on an incremental
    run whose whole window fits one answer even with KNOWN_SERIES_MARGIN times the stored containers
    (an hourly run: one query fewer)."""
    if state.known_series is not None:
        bound = KNOWN_SERIES_MARGIN * max(1, state.known_series)
        steps = _chunk_steps(options, start, end, spec_step, state, bound)
        all_steps = int((end - start).total_seconds() // options.step_seconds) + 1
        if steps >= all_steps and bound * steps * _raw_per_step(options, state) <= options.max_points_per_query:
            return [options.namespaces or None], steps
    counts: dict[str, int] = {}
    for name, match in (("container_memory_working_set_bytes",
                         f"container_memory_working_set_bytes{{{REAL_CONTAINERS}{_ns_sel(options.namespaces)}"
                         f"{',' + options.scope if options.scope else ''}}}"),
                        ("kube_pod_status_phase", "kube_pod_status_phase{"
                         + ",".join(p for p in (_ns_sel(options.namespaces, lead=False), options.scope) if p) + "}")):
        if present is not None and name not in present or (name == "kube_pod_status_phase" and counts):
            continue  # pods are counted only where cAdvisor is missing
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
    steps = _chunk_steps(options, start, end, spec_step, state, total)
    per_answer = _raw_per_step(options, state)  # the largest answers are the raw usage ones
    if total * steps * per_answer <= budget or total <= 0:
        return [options.namespaces or None], steps
    # shorter chunks first (down to what the largest namespace allows), then namespace batches
    steps = max(1, min(steps, int(budget // max(1.0, largest * per_answer))))
    if total * steps * per_answer <= budget:
        return [options.namespaces or None], steps
    return list(batch_namespaces(counts, max(largest, int(budget // (steps * per_answer))))), steps


def _raw_per_step(options: CollectOptions, state: RunState) -> float:
    """Raw usage samples per step and container (more than one when cAdvisor is scraped more often)."""
    step = options.step_seconds
    return max(1.0, step / (state.cadvisor_scrape_seconds or step))


def _chunk_steps(options: CollectOptions, start: datetime, end: datetime, spec_step: int, state: RunState,
                 total: int) -> int:
    """Steps per chunk for `total` containers: the window, capped by --chunk, the per-series point
    limit and the chunk's point budget."""
    step = options.step_seconds
    all_steps = int((end - start).total_seconds() // step) + 1
    steps = min(all_steps, max(1, int(options.chunk.total_seconds() // step)), MAX_POINTS_PER_SERIES - 1)
    # points per step over all metrics: 2 raw usage series per container, ~6 spec series per
    # container or pod at the spec step (read per coarse window, expanded here)
    per_step = max(1, total) * (2 * _raw_per_step(options, state) + 12 * step / spec_step)
    return max(1, min(steps, int(CHUNK_BUDGET_FACTOR * options.max_points_per_query // per_step)))


def _ns_sel(namespaces: list[str] | None, lead: bool = True) -> str:
    if not namespaces:
        return ""
    return ("," if lead else "") + label_matcher("namespace", namespaces)


# (metric key, how: "raw" | "coarse" | "fine", namespaces batch, start, end)
Job = tuple[str, str, list[str] | None, datetime, datetime]


def chunk_jobs(chunk: Chunk, wanted: list[Metric], marks: dict[str, datetime], batches: list[list[str] | None],
               step: int, spec_step: int, state: RunState | None = None) -> list[Job]:
    """The first-level queries of one chunk (coarse answers may be followed by a spec-step query
    for the few windows that changed)."""
    jobs: list[Job] = []
    for metric in wanted:
        if metric.key in marks and marks[metric.key] >= chunk.end:
            continue  # this metric is already stored up to here
        how = "raw" if metric.kind == "usage" else ("fine" if metric.labels is None else "coarse")
        for batch in ([None] if metric.kind == "node" else batches):
            jobs.append((metric.key, how, batch, chunk.start, chunk.end))
    return jobs


# A future's metric key, or the keys of a grouped read (its result: key -> answer)
Pending = dict[Future, str | tuple[str, ...]]


def _submit_chunk(pool: ThreadPoolExecutor, client: PromClient, chunk: Chunk, wanted: list[Metric],
                  marks: dict[str, datetime], batches: list[list[str] | None], step: int, spec_step: int,
                  state: RunState) -> Pending:
    """Queue every query of one chunk; the pool runs at most `concurrency` at once."""
    jobs = chunk_jobs(chunk, wanted, marks, batches, step, spec_step, state)
    singles, groups = _grouped(jobs, state, spec_step)
    # the largest answers first (usage, then the largest groups): the small ones fill in beside them
    usage = [job for job in singles if METRICS_BY_KEY[job[0]].kind == "usage"]
    pending: Pending = {pool.submit(_fetch, client, METRICS_BY_KEY[key], how, batch, lo, hi, step, spec_step,
                                    state): key for key, how, batch, lo, hi in usage}
    for group in sorted(groups, key=len, reverse=True):
        keys = tuple(job[0] for job in group)
        _, _, batch, lo, hi = group[0]
        pending[pool.submit(_fetch_group, client, [(METRICS_BY_KEY[key], how) for key, how, *_ in group], batch, lo,
                            hi, step, spec_step, state)] = keys
    for key, how, batch, lo, hi in singles:
        if METRICS_BY_KEY[key].kind != "usage":
            pending[pool.submit(_fetch, client, METRICS_BY_KEY[key], how, batch, lo, hi, step, spec_step, state)] = key
    return pending


def _grouped(jobs: list[Job], state: RunState, spec_step: int) -> tuple[list[Job], list[list[Job]]]:
    """The jobs asked one by one, and the groups of declared-state jobs asked in one raw read each.
    A short run reading declared state raw (RunState.declared_raw; the hourly run) asks the
    metrics that share their extra matchers, namespace batch and window together
    (`{__name__=~"a|b|...",...}[range]`, queries.render_raw_group): the same series and samples in
    6 answers instead of 22. On bench/collect_bench.py's M next hour that is the client's work
    (fewer round trips and answers to decode: the whole `capplan collect` 0.87-0.88 -> 0.79-0.83 CPU
    s, median of four interleaved runs each at load 7); Prometheus 2.42's CPU stays as it was (its cost is per
    series read: 256 against 257 ms for the hour's reads replayed two at a time, as the collector
    sends them). Usage reads and long runs' coarse reads stay one per metric."""
    if state.coarse_seconds or not state.declared_raw(spec_step):
        return jobs, []
    singles: list[Job] = []
    groups: dict[tuple[Any, ...], list[Job]] = {}
    for job in jobs:
        key, how, batch, lo, hi = job
        metric = METRICS_BY_KEY[key]
        if metric.kind == "usage":
            singles.append(job)
            continue
        # restarts are read from one spec step earlier (a baseline), so they group apart
        groups.setdefault((metric.match, key.endswith("_restarts_total"), tuple(batch) if batch else None, lo, hi),
                          []).append(job)
    merged = [group for group in groups.values() if len(group) > 1]
    singles += [group[0] for group in groups.values() if len(group) == 1]
    return singles, merged


def _fetch_group(client: PromClient, members: list[tuple[Metric, str]], batch: list[str] | None, lo: datetime,
                 hi: datetime, step: int, spec_step: int, state: RunState) -> dict[str, Any]:
    """Several declared-state metrics of one short run read raw in one answer (_grouped), split by
    metric name and each turned into what _fetch gives for it alone."""
    spec_lo = align_up(lo, spec_step)
    if members[0][0].key.endswith("_restarts_total"):
        spec_lo -= timedelta(seconds=spec_step)  # a baseline to compare the first point with
    spec_hi = align_down(hi, spec_step)
    if spec_lo > spec_hi:
        return {metric.key: _fetch(client, metric, how, batch, lo, hi, step, spec_step, state) for metric, how in members}
    names = [metric.key for metric, _ in members]
    answer = _raw_split(client, members[0][0], batch, spec_lo - timedelta(seconds=spec_step), spec_hi, state.scope,
                        spec_step, names=names)
    parts = answer.by_name()
    if parts is None:  # a backend that drops the metric name: one query per metric after all
        return {metric.key: _fetch(client, metric, how, batch, lo, hi, step, spec_step, state) for metric, how in members}
    lo_s, hi_s = int(epoch(spec_lo)), int(epoch(spec_hi))
    out: dict[str, Any] = {}
    for metric, how in members:
        part = parts.get(metric.key, Matrix.empty())
        if how == "fine":
            out[metric.key] = tf.stepped_series_from_raw(part, lo_s, hi_s, spec_step)
        else:
            out[metric.key] = tf.stepped_from_raw(part, list(metric.by), dict(metric.aliases) or None, lo_s, hi_s,
                                                  spec_step, equals_one=metric.post == " == 1")
    return out


def _fetch(client: PromClient, metric: Metric, how: str, batch: list[str] | None, lo: datetime, hi: datetime,
           step: int, spec_step: int, state: RunState) -> Any:
    """One job, turned into a compact frame at once (the decoded JSON is ~5x larger)."""
    if how == "raw":
        start = lo - timedelta(seconds=step + state.raw_lead_seconds(step))
        selector = ",".join(p for p in (state.usage_selector, state.scope) if p)
        results = _raw_split(client, metric, batch, start, hi, selector, step)
        return tf.raw_frame(results, [*USAGE_KEYS, *USAGE_SOURCE_LABELS])
    spec_lo = align_up(lo, spec_step)
    if metric.key.endswith("_restarts_total"):
        spec_lo -= timedelta(seconds=spec_step)  # a baseline to compare the first point with
    spec_hi = align_down(hi, spec_step)
    if how == "fine":
        if spec_lo > spec_hi:
            return []
        if state.declared_raw(spec_step):
            return tf.stepped_series_from_raw(_declared_raw(client, metric, batch, spec_lo, spec_hi, spec_step, state),
                                              int(epoch(spec_lo)), int(epoch(spec_hi)), spec_step)
        return _range_split(client, render(metric, batch, spec_step * 1000 - 1, scope=state.scope), spec_lo, spec_hi,
                            spec_step).results()  # node labels, read label by label
    return _fetch_coarse(client, metric, batch, spec_lo, spec_hi, spec_step, state)


def _declared_raw(client: PromClient, metric: Metric, batch: list[str] | None, spec_lo: datetime, spec_hi: datetime,
                  spec_step: int, state: RunState, only: tuple[str, list[str]] | None = None) -> Matrix:
    """The raw samples of a declared-state metric in (spec_lo - spec_step, spec_hi] (with `only`,
    of some values of one label): everything the spec-step query over spec_lo..spec_hi reads."""
    matchers = ",".join(p for p in (label_matcher(*only) if only else "", state.scope) if p)
    return _raw_split(client, metric, batch, spec_lo - timedelta(seconds=spec_step), spec_hi, matchers, spec_step)


def _read_coarse(pool: ThreadPoolExecutor, client: PromClient, wanted: list[Metric], batches: list[list[str] | None],
                 start: datetime, end: datetime, spec_step: int, state: RunState) -> None:
    """For a run long enough (COARSE_MIN_RUN), the last value of every declared-state series per
    coarse window over the whole run, one query per metric (and batch): a few thousand points per
    series at most, kept for the chunks to expand. Shorter runs read at the spec step."""
    if end - start < COARSE_MIN_RUN:
        return
    coarse_s = max(spec_step, COARSE_SECONDS // spec_step * spec_step)
    first = align_up(align_up(start, spec_step), coarse_s) - timedelta(seconds=coarse_s)  # one window before
    last = align_up(align_down(end, spec_step), coarse_s) + timedelta(seconds=coarse_s)   # and one after
    futures = {}
    for metric in wanted:
        if metric.kind == "usage" or metric.labels is None:
            continue
        for batch in ([None] if metric.kind == "node" else batches):
            futures[pool.submit(_coarse_read, client, metric, batch, first, last, coarse_s, state.scope)] = metric
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    parts: dict[str, list[pl.DataFrame]] = {}
    for future, metric in futures.items():
        if future.exception() is not None:
            _cancel(futures)  # type: ignore[arg-type]
            raise future.exception()  # type: ignore[misc]
        parts.setdefault(metric.key, []).append(future.result())
    # which windows held one value and which to read again, once for the whole run (each chunk
    # then takes its own windows: the same flags, as a window's neighbours are within the run),
    # rather than per chunk and metric (bench/collect_bench.py's M first run: ~4 s of client CPU)
    for key, items in parts.items():
        metric = METRICS_BY_KEY[key]
        keys = [dict(metric.aliases).get(label, label) for label in metric.by]
        state.coarse[key] = tf.kept_windows(pl.concat(items), keys, coarse_s, spec_step)
    state.coarse_seconds = coarse_s


def _coarse_read(client: PromClient, metric: Metric, batch: list[str] | None, first: datetime, last: datetime,
                 coarse_s: int, scope: str) -> pl.DataFrame:
    """One coarse read, folded at once (tf.coarse_values): the answers, per series and ~30% larger
    than `max by`'s, are not all held together (the bench's M first run: ~13 MB of JSON)."""
    answer = _range_split(client, render_coarse(metric, batch, coarse_s * 1000 - 1, scope), first, last, coarse_s)
    return tf.coarse_values(answer, list(metric.by), dict(metric.aliases) or None, equals_one=metric.post == " == 1")


def _fetch_coarse(client: PromClient, metric: Metric, batch: list[str] | None, spec_lo: datetime, spec_hi: datetime,
                  spec_step: int, state: RunState) -> pl.DataFrame | tf.Declared:
    """Declared state over [spec_lo, spec_hi] as spec-step observations: the run's coarse windows
    expanded where nothing changed (on demand: tf.Declared), read again at the spec step where
    something did."""
    aliases = dict(metric.aliases)
    keys = [aliases.get(label, label) for label in metric.by]
    coarse_s = state.coarse_seconds
    if spec_lo > spec_hi:
        return tf.to_frame([], list(metric.by), aliases or None)
    if not coarse_s:
        if state.declared_raw(spec_step):
            return tf.stepped_from_raw(_declared_raw(client, metric, batch, spec_lo, spec_hi, spec_step, state),
                                       list(metric.by), aliases or None, int(epoch(spec_lo)), int(epoch(spec_hi)),
                                       spec_step, equals_one=metric.post == " == 1")
        return tf.to_frame(_range_split(client, render(metric, batch, spec_step * 1000 - 1, scope=state.scope), spec_lo, spec_hi, spec_step),
                           list(metric.by), aliases or None)
    lo_s, hi_s = int(epoch(spec_lo)), int(epoch(spec_hi))
    windows = state.coarse.get(metric.key)
    kept, refine = windows if windows is not None else tf.kept_windows(
        tf.coarse_values([], list(metric.by), aliases or None), keys, coarse_s, spec_step)
    if batch is not None and "namespace" in kept.columns:
        kept = kept.filter(pl.col("namespace").is_in(batch))
        refine = refine.filter(pl.col("namespace").is_in(batch))
    # the chunk's windows and their neighbours
    kept = kept.filter((pl.col("T") >= lo_s - coarse_s) & (pl.col("T") - coarse_s < hi_s + coarse_s))
    refine = refine.filter((pl.col("T") >= lo_s) & (pl.col("T") - coarse_s < hi_s))
    fine = None
    if not refine.is_empty():
        names = sorted(set(refine[metric.key_label].to_list()))
        only = (metric.key_label, names) if len(names) <= MAX_REFINE_NAMES else None
        first_t, last_t = refine.select(pl.col("T").min().alias("a"), pl.col("T").max().alias("b")).row(0)
        fine_lo = max(spec_lo, from_epoch(int(first_t) - coarse_s + spec_step))
        # at least two points: VictoriaMetrics answers a range query with start == end with nothing
        fine_hi = max(min(spec_hi, from_epoch(int(last_t))), fine_lo + timedelta(seconds=spec_step))
        if state.declared_raw(spec_step):
            # the raw samples, as short runs read them (RunState.declared_raw): on
            # bench/collect_bench.py's M first run the re-reads' spec-step queries cost the
            # server 2.6 s of CPU, the same samples read raw 1.1 s (each step's window lookup
            # and `max by` at 72 points per series and window are the cost, not the samples)
            fine = tf.stepped_from_raw(_declared_raw(client, metric, batch, fine_lo, fine_hi, spec_step, state, only),
                                       list(metric.by), aliases or None, int(epoch(fine_lo)), int(epoch(fine_hi)),
                                       spec_step, equals_one=metric.post == " == 1")
        else:
            fine = tf.to_frame(_range_split(client, render(metric, batch, spec_step * 1000 - 1, only, scope=state.scope),
                                            fine_lo, fine_hi, spec_step), list(metric.by), aliases or None)
        fine = fine.with_columns(T=((pl.col("ts").dt.epoch("s") + coarse_s - 1) // coarse_s * coarse_s)).join(
            refine, on=[*keys, "T"], how="semi").drop("T")
    return tf.Declared([(kept, fine)], keys, coarse_s, spec_step, spec_lo, spec_hi)


# Spec points per slice of declared state turned into intervals at once (_frames): 3 hours at the
# default 5-minute spec step; the bench's M first run peaked at 880 MiB with whole 10-hour chunks.
SPEC_SLICE_POINTS = 36

# Declared state is read raw when kube-state-metrics' scrape interval is at least this fraction of
# the spec step (one sample per step; 0.95 leaves room for a measured median a little under it).
RAW_DECLARED_MIN_STEP_FRACTION = 0.95

# Runs shorter than this read declared state at the spec step (an hourly run: 12 points a series)
# rather than per coarse window plus the neighbouring windows.
COARSE_MIN_RUN = timedelta(hours=12)
# Objects asked again by name in one query at most; more and the whole metric is asked for the
# span (a regex of thousands of names costs the server more than it saves).
MAX_REFINE_NAMES = 2000


def _gather(futures: Pending) -> dict[str, Any]:
    """Wait for a chunk's queries; answers merged per metric. The first failure cancels the rest."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in futures:
        if future in done and future.exception() is not None:
            _cancel(futures)
            raise future.exception()  # type: ignore[misc]
    parts: dict[str, list[Any]] = {}
    for future, key in futures.items():
        if isinstance(key, tuple):  # a grouped read: key -> answer
            for member, answer in future.result().items():
                parts.setdefault(member, []).append(answer)
        else:
            parts.setdefault(key, []).append(future.result())
    answers: dict[str, Any] = {}
    for key, items in parts.items():
        if isinstance(items[0], tf.Raw):
            answers[key] = tf.Raw.concat(items)
        elif isinstance(items[0], tf.Declared):
            answers[key] = tf.Declared.concat(items)
        elif isinstance(items[0], pl.DataFrame):
            answers[key] = items[0] if len(items) == 1 else pl.concat(items)
        else:
            answers[key] = [r for item in items for r in item]
    return answers


def _cancel(futures: Pending | None) -> None:
    for future in futures or ():
        future.cancel()


def _answer(client: PromClient, body: Body, what: str) -> Matrix:
    """An answer as columns: decoded straight into them when it is a plain matrix, else the general way."""
    return matrix.decode(body.data) or Matrix.from_results(client.results(body, what))


def _range_split(client: PromClient, promql: str, lo: datetime, hi: datetime, step: int) -> Matrix:
    """A range query, halved in time while the server says the answer is too large."""
    try:
        return _answer(client, client.query_range_body(promql, lo, hi, step), "query_range")
    except TooLarge as exc:
        halves = split_range(lo, hi, step)
        if not halves:
            raise SourceError(
                f"{client.display_url} refused even a one-step query as too large ({exc}); "
                "collect fewer namespaces at once (--namespace) or raise --query.max-samples"
            ) from None
        return Matrix.concat([_range_split(client, promql, a, b, step) for a, b in halves])


def _raw_split(client: PromClient, metric: Metric, batch: list[str] | None, lo: datetime, hi: datetime,
               usage_selector: str, step: int, names: list[str] | None = None) -> Matrix:
    """Raw samples in (lo, hi], halved in time while the server says the answer is too large; with
    `names`, of those metrics (sharing `metric`'s extra matchers) in one answer."""
    range_ms = int(round((epoch(hi) - epoch(lo)) * 1000)) - 1
    promql = (render_raw_group(names, metric.match, batch, range_ms, usage_selector) if names
              else render_raw(metric, batch, range_ms, usage_selector))
    try:
        return _answer(client, client.query_body(promql, hi), "query")
    except TooLarge as exc:
        if (hi - lo).total_seconds() <= step:
            raise SourceError(
                f"{client.display_url} refused even one step of raw samples as too large ({exc}); "
                "collect fewer namespaces at once (--namespace) or raise --query.max-samples"
            ) from None
        mid = lo + (hi - lo) / 2
        return Matrix.concat([_raw_split(client, metric, batch, lo, mid, usage_selector, step, names),
                              _raw_split(client, metric, batch, mid, hi, usage_selector, step, names)])


def _learn(answers: dict[str, Any], state: RunState, step: int, url: str, note: Callable[[str], None]) -> None:
    """From the first chunk's raw answers: which cAdvisor scrape to use when several export the
    same containers, and the scrape interval where the data is (unless stored by an earlier run)."""
    raws = [answers[k] for k in ("container_memory_working_set_bytes", "container_cpu_usage_seconds_total")
            if isinstance(answers.get(k), tf.Raw)]
    if not state.usage_selector and raws:
        picked = _pick_source(pl.concat([r.series.select(*USAGE_KEYS[:3], *USAGE_SOURCE_LABELS) for r in raws]), url, note)
        if picked:
            state.usage_selector = picked
    if state.cadvisor_scrape_seconds is None:
        for raw in raws:
            if state.usage_selector:
                raw = _only_source(raw, state.usage_selector)
            measured = tf.median_interval_seconds(raw)
            if measured:
                state.cadvisor_scrape_seconds = measured
                break
    scrape = state.cadvisor_scrape_seconds
    if scrape and scrape > step * 1.05:
        note(f"--step {step}s is finer than the {scrape:g}s scrape interval of cAdvisor series at {url}: each step "
             f"gets the CPU average of the scrape interval that covers it and the memory peak of the last {scrape:g}s")


def _pick_source(frame: pl.DataFrame, url: str, note: Callable[[str], None]) -> str | None:
    """When more than one scrape (job, metrics_path) exports the same containers, the label
    matchers of the one to keep: kube-prometheus-stack's kubelet /metrics/cadvisor when present,
    else the one exporting most containers. None when there is one source."""
    sources = frame.group_by(*USAGE_SOURCE_LABELS).agg(
        containers=pl.struct("namespace", "pod", "container").n_unique()).sort("containers", descending=True)
    if sources.height <= 1:
        return None
    dup = frame.unique().group_by("namespace", "pod", "container").agg(n=pl.len()).filter(pl.col("n") > 1)
    if dup.is_empty():
        return None  # different scrapes for different containers: nothing is counted twice
    rows = sources.rows(named=True)
    preferred = [r for r in rows if r["job"] == "kubelet" and r["metrics_path"] == "/metrics/cadvisor"]
    chosen = preferred[0] if preferred else rows[0]
    from capplan.promql import escape_label_value

    matchers = ",".join(f'{k}="{escape_label_value(chosen[k])}"' for k in USAGE_SOURCE_LABELS)
    listed = "; ".join(f"job={r['job'] or '-'} metrics_path={r['metrics_path'] or '-'}" for r in rows)
    note(f"cAdvisor series at {url} come from {len(rows)} scrapes ({listed}) exporting the same containers, which "
         f"would count their usage {len(rows)} times: using {{{matchers}}} (choose another with --usage-selector)")
    return matchers


def _only_source(raw: tf.Raw, matchers: str) -> tf.Raw:
    """The raw series matching simple `label="value"` matchers (the ones _pick_source writes)."""
    import re

    series = raw.series
    for label, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', matchers):
        if label in series.columns:
            series = series.filter(pl.col(label) == value.replace('\\"', '"').replace("\\\\", "\\"))
    return raw.only(series) if series.height < raw.series.height else raw


def _frames(answers: dict[str, Any], chunk: Chunk, step: int, spec_step: int, present: set[str] | None,
            state: RunState, note: Callable[[str], None]) -> dict[str, pl.DataFrame]:
    """The store frames of one chunk."""

    # The coarse windows holding spec-step re-reads, per object (_joined_objects): elsewhere an
    # object's spec tables need only the two ends of each kept window (tf.Declared.frame).
    reread_parts: dict[tuple[str, ...], list[pl.DataFrame]] = {}
    for key, found in answers.items():
        objects = _joined_objects(METRICS_BY_KEY[key]) if isinstance(found, tf.Declared) else None
        if objects is not None:
            reread_parts.setdefault(objects, []).append(found.reread_windows(objects))
    reread = {objects: pl.concat(parts).unique() for objects, parts in reread_parts.items()}

    def long(key: str, a: datetime | None = None, b: datetime | None = None, ends: bool = False) -> pl.DataFrame:
        """The metric's observations (with ts in [a, b]; None: open). `ends`: for the spec
        tables, kept windows without a re-read of their object give their two ends only."""
        found = answers.get(key)
        if isinstance(found, tf.Declared):
            objects = _joined_objects(METRICS_BY_KEY[key]) if ends else None
            return found.frame(a, b, reread[objects] if objects is not None else None)
        if isinstance(found, pl.DataFrame):
            if a is None and b is None:
                return found
            return found.filter(pl.col("ts").is_between(a or datetime.min, b or datetime.max))
        metric = METRICS_BY_KEY[key]
        return tf.to_frame([], list(metric.labels or ()), dict(metric.aliases) or None)

    def maybe(key: str, a: datetime | None = None, b: datetime | None = None, ends: bool = False) -> pl.DataFrame | None:
        # None when the source lacks the metric (the column stays NULL: unknown, not "none")
        if present is not None and key not in present:
            return None
        return long(key, a, b, ends)

    def raw(key: str) -> tf.Raw:
        found = answers.get(key)
        frame = found if isinstance(found, tf.Raw) else tf.raw_frame([], [*USAGE_KEYS, *USAGE_SOURCE_LABELS])
        return _only_source(frame, state.usage_selector) if state.usage_selector else frame

    lo, hi = epoch(chunk.start), epoch(chunk.end)
    scrape = state.cadvisor_scrape_seconds or step
    usage = tf.usage_from_raw(raw("container_cpu_usage_seconds_total"), raw("container_memory_working_set_bytes"),
                              USAGE_KEYS, lo, hi, step, state.max_gap_seconds(step), scrape)
    if not usage.is_empty() and (usage["node"] == "").any():  # else fill_usage_nodes has nothing to do
        usage = tf.fill_usage_nodes(usage, long("kube_pod_info"))
    init_info = long("kube_pod_init_container_info", ends=True)  # the same label values, fewer rows
    if not init_info.is_empty() and (init_info["restart_policy"] == "").all():
        note("kube_pod_init_container_info has no restart_policy label (kube-state-metrics before 2.11): native "
             "sidecars (restartPolicy: Always) cannot be told from init containers and are counted as init containers")
    labels = answers.get("kube_node_labels")
    node_labels: list[dict[str, Any]] | None = None
    if labels and not any(k.startswith("label_") for r in labels for k in r["metric"]):
        note("kube_node_labels carries no label_* labels: kube-state-metrics exports node labels only for those named "
             "in --metric-labels-allowlist (e.g. nodes=[node.kubernetes.io/instance-type,topology.kubernetes.io/zone]): "
             "capplan will lack node pools and instance types")
    elif present is None or "kube_node_labels" in present:
        node_labels = list(labels or [])
    if node_labels is None:  # zones from the cloud provider ids, where they name one
        node_labels = tf.labels_from_provider_ids(long("kube_node_info"))
    if node_labels and ("node",) in reread:  # a node's labels joined at the ends of its kept windows
        reread[("node",)] = pl.concat([reread[("node",)], tf.changing_windows(
            node_labels, "node", state.coarse_seconds, spec_step, align_up(chunk.start, spec_step),
            align_down(chunk.end, spec_step))]).unique()
    def spec_tables(a: datetime | None, b: datetime | None) -> dict[str, pl.DataFrame]:
        def cut(key: str) -> pl.DataFrame:
            return long(key, a, b, ends=True)

        def cut_maybe(key: str) -> pl.DataFrame | None:
            return maybe(key, a, b, ends=True)

        return {
            "nodes": tf.nodes_frame(cut("kube_node_status_capacity"), cut("kube_node_status_allocatable"),
                                    node_labels, cut_maybe("kube_node_spec_taint"), spec_step),
            "pods": tf.pods_frame(cut("kube_pod_info"), cut("kube_pod_owner"), cut("kube_pod_status_qos_class"),
                                  cut("kube_pod_status_phase"), spec_step),
            "containers": tf.containers_frame(
                cut("kube_pod_container_resource_requests"), cut("kube_pod_container_resource_limits"),
                cut("kube_pod_init_container_resource_requests"), cut("kube_pod_init_container_resource_limits"),
                cut("kube_pod_container_info"), cut("kube_pod_init_container_info"), spec_step),
            "owners": tf.owners_frame(cut("kube_replicaset_owner"), cut("kube_job_owner"), spec_step),
            "workloads": tf.workloads_frame(cut("kube_deployment_spec_replicas"),
                                            cut_maybe("kube_deployment_spec_strategy_rollingupdate_max_surge"), spec_step),
            "hpas": tf.hpas_frame(cut("kube_horizontalpodautoscaler_spec_target_metric"),
                                  cut_maybe("kube_horizontalpodautoscaler_info"), spec_step),
            "resource_quotas": tf.quotas_frame(cut("kube_resourcequota"), spec_step),
        }

    # Declared state read at the spec step (short runs) is turned into intervals a few hours of
    # spec points at a time: the joins of its observations held ~300 MiB at once for a 10-hour
    # chunk of the bench's M cluster. The slices' intervals are concatenated; store.write_spec
    # merges a key's equal-valued intervals of one write into one, so the stored rows are those of
    # the whole chunk at once. Read per coarse window, it is a few rows per window and object
    # (the ends of kept windows): the whole chunk at once, 7 tables rather than 7 per slice.
    tables: dict[str, list[pl.DataFrame]] = {}
    lo_ts, hi_ts = from_epoch(lo), from_epoch(hi)
    slice_span = (hi_ts - lo_ts + timedelta(seconds=spec_step) if state.coarse_seconds
                  else timedelta(seconds=spec_step * SPEC_SLICE_POINTS))
    t = lo_ts
    while t <= hi_ts:
        # the first and last slices are open-ended: no observation is left out
        a = None if t == lo_ts else t
        b = None if t + slice_span > hi_ts else t + slice_span - timedelta(microseconds=1)
        for name, frame in spec_tables(a, b).items():
            if not frame.is_empty():
                tables.setdefault(name, []).append(frame)
        t = t + slice_span
    frames = {
        "usage": usage,
        **{name: parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
           for name, parts in tables.items()},
        # a restart is a rise between two observations: none inside a kept window, so its ends do
        "restarts": tf.restarts_frame(
            pl.concat([long("kube_pod_container_status_restarts_total", ends=True),
                       long("kube_pod_init_container_status_restarts_total", ends=True)]),
            pl.concat([long("kube_pod_container_status_last_terminated_reason"),
                       long("kube_pod_init_container_status_last_terminated_reason")]),
            align_up(chunk.start, spec_step) - timedelta(microseconds=1)),
    }
    pod_level = tf.pods_without_container_resources(frames.get("pods", pl.DataFrame()),
                                                    frames.get("containers", pl.DataFrame()))
    if pod_level:
        note(f"{len(pod_level)} pod(s) (e.g. {pod_level[0]}) have a Burstable or Guaranteed QoS class but no container "
             "requests or limits: they likely declare pod-level resources (spec.resources, beta in Kubernetes 1.34), "
             "which kube-state-metrics does not export; their requests and limits are unknown to capplan")
    return frames


def _joined_objects(metric: Metric) -> tuple[str, ...] | None:
    """The labels naming the object whose spec-table rows `metric` joins into at each spec point
    (a pod's containers, owner, phase...: namespace and pod; a Deployment's replicas and surge:
    namespace and deployment; a node's capacity, taints and labels: node), for the ends of kept
    windows (tf.Declared.frame). Node labels arrive at the spec step: the windows where they
    change count as re-read (tf.changing_windows)."""
    if metric.kind == "node":
        return ("node",)
    if "namespace" not in metric.by:
        return None
    return ("namespace", metric.key_label)


def _commit(db: str | Path | None, source: str, chunk: Chunk, frames: dict[str, pl.DataFrame], usage: pl.DataFrame,
            summary: CollectSummary, state: RunState | None, cluster: str = store.DEFAULT_CLUSTER,
            finish: tuple[int, int, PromClient] | None = None, con: Any = None) -> None:
    """One transaction: the chunk's spec, restarts, usage, every metric's high-water mark (and,
    with the first chunk, what the run measured about its source), all of `cluster`. With
    `finish` (run id, series seen, client) on the run's last chunk, then the run's end as "ok".
    On `con` when given (the run's writer, left open), else on a connection of its own."""
    own = con is None
    if own:
        # refreshed below, after the chunk; the run's start was recorded as a writer already
        con = store.open_db(db, refresh_sums=False, current=True)
    try:
        with store.transaction(con):
            spec_rows = 0
            for table in store.SPEC_TABLES:
                frame = frames.get(table)
                if frame is not None and not frame.is_empty():
                    spec_rows += store.write_spec(con, table, frame, cluster=cluster)
            restarts = frames.get("restarts")
            restart_rows = (store.write_restarts(con, restarts, cluster=cluster)
                            if restarts is not None and not restarts.is_empty() else 0)
            samples = store.write_usage(con, usage, cluster=cluster)
            # every metric's mark moves with the chunk (one statement: the upsert per metric is slow)
            store.set_high_water_marks(con, source, [m.key for m in METRICS], chunk.end, cluster)
            if state is not None:
                _store_sources(con, source, state, cluster)
        summary.spec_rows += spec_rows
        summary.restarts += restart_rows
        summary.samples += samples
        # the chunk's node sums now (the next open would do it: the run's end no longer opens the DB);
        # the daily scope figures once, with the last chunk: each is of a whole day's samples, which
        # 2-3 chunks share (bench/collect_bench.py's M first run recomputed each day 2-3 times). A
        # run stopped earlier leaves them pending (readers compute pending days from the samples;
        # the next writer's open refreshes them).
        store.refresh_node_usage(con, scope=finish is not None)
        if finish is not None:
            run_id, series, client = finish
            with store.transaction(con):
                store.finish_collection_run(
                    con, run_id, finished_at=datetime.now(UTC).replace(tzinfo=None), series=series,
                    samples=summary.samples, queries=client.queries, status="ok", message=None,
                    window_end=chunk.end)
            # the complete days the run appended to, in the clustered order (schema 009): an hourly
            # run rewrites a day only in its first run past midnight
            store.cluster_usage(con)
    finally:
        if own:
            con.close()


def _store_sources(con: Any, source: str, state: RunState, cluster: str) -> None:
    """Keep what was measured for later runs: a stored value is never replaced by a new guess."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for exporter, seconds, selector in (("cadvisor", state.cadvisor_scrape_seconds, state.usage_selector),
                                        ("kube-state-metrics", state.ksm_scrape_seconds, "")):
        if exporter in state.stored or seconds is None:
            continue
        con.execute("INSERT INTO collector_sources (cluster, source, exporter, scrape_seconds, selector, measured_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", [cluster, source, exporter, seconds, selector, now])


def _record_run(con: Any, summary: CollectSummary, source: str, start: datetime | None,
                end: datetime | None, status: str, message: str | None, cluster: str = store.DEFAULT_CLUSTER) -> int:
    """The run's row in collection_runs (on the run's writer connection); its id."""
    with store.transaction(con):
        now = datetime.now(UTC).replace(tzinfo=None)
        return store.start_collection_run(con, source=source, now=now, window_start=start, window_end=end,
                                          queries=summary.queries, status=status, message=message,
                                          cluster=cluster)


def _finish_run(db: str | Path | None, run_id: int, summary: CollectSummary, status: str, message: str | None) -> None:
    try:
        con = store.open_db(db)
    except CapplanError:
        return  # the run row stays "running"; the data committed so far is consistent anyway
    try:
        with store.transaction(con):
            store.finish_collection_run(
                con, run_id, finished_at=datetime.now(UTC).replace(tzinfo=None), series=summary.series,
                samples=summary.samples, queries=summary.queries, status=status,
                message=(message or "")[:500] or None, window_end=summary.collected_until)
    finally:
        con.close()


__all__ = ["CollectOptions", "CollectSummary", "StopFlag", "collect", "source_key", "from_epoch", "METRICS_BY_KEY"]
