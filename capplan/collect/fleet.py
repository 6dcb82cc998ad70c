"""A central Prometheus, Thanos or Mimir that holds many clusters' series under one label
(`collect --cluster-label cluster`): each value of the label is collected as its own cluster.

Each cluster is one ordinary run (capplan.collect.run) whose every selector carries
`LABEL="value"` (escaped), so what lands in the store for a cluster is what a Prometheus of that
cluster alone would have given, and its high-water marks are its own (cluster, source, metric):
a cluster that joins the central store later gets its whole `--since` history on its first run.
The cost: one set of queries per cluster (the queries of one run are per cluster anyway: every
aggregation groups by the cluster's own labels).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from capplan import store
from capplan.collect.client import ClientOptions, PromClient
from capplan.collect.queries import utc_naive
from capplan.collect.run import SETTLE, CollectOptions, CollectSummary, ProgressFn, StopFlag, WarnFn, collect
from capplan.errors import BadInputError, NoDataError, UsageError
from capplan.promql import label_matcher

# The series that say a cluster exists: every cluster has cAdvisor or kube-state-metrics series.
CLUSTER_EVIDENCE = ("container_memory_working_set_bytes", "kube_pod_info", "kube_node_info")


def cluster_matcher(label: str, value: str) -> str:
    """`label="value"`, the value escaped for PromQL."""
    return label_matcher(label, [value])


def discover_clusters(options: CollectOptions) -> list[str]:
    """The values of `options.cluster_label` on cAdvisor or kube-state-metrics series over the
    window a first run would read (index only)."""
    label = options.cluster_label or ""
    try:
        label_matcher(label, ["x"])
    except ValueError:
        raise UsageError(f"--cluster-label {label!r} is not a Prometheus label name") from None
    now = utc_naive(options.now or datetime.now(UTC))
    end = utc_naive(options.end) if options.end else now - SETTLE
    start = utc_naive(options.start) if options.start else end - options.since
    client = PromClient(ClientOptions(url=options.url, token=options.token, ca_file=options.ca_file,
                                      insecure_skip_tls_verify=options.insecure_skip_tls_verify,
                                      timeout_seconds=options.timeout_seconds, retries=options.retries))
    try:
        names = "|".join(CLUSTER_EVIDENCE)
        values = client.label_values(label, start, end, match=[f'{{__name__=~"{names}"}}'])
    finally:
        client.close()
    return sorted(str(v) for v in values if str(v) != "")


def collect_clusters(options: CollectOptions, *, progress: ProgressFn | None = None, warn: WarnFn | None = None,
                     stop: StopFlag | None = None) -> list[tuple[str, CollectSummary]]:
    """Collect every cluster the label names, one after another (each with its own lock, chunks
    and high-water marks); after a SIGTERM, the clusters not begun yet are left for the next run."""
    warn = warn or (lambda _msg: None)
    stop = stop or StopFlag()
    found = discover_clusters(options)
    if not found:
        raise NoDataError(f"no cAdvisor or kube-state-metrics series at the source carry the label "
                          f"{options.cluster_label!r} (is it the label the clusters' series are stored under?)")
    done: list[tuple[str, CollectSummary]] = []
    for value in found:
        if stop:
            break
        try:
            name = store.check_cluster_name(value)
        except BadInputError:
            warn(f"{options.cluster_label}={value[:60]!r} cannot name a cluster (empty, too long or control "
                 "characters): its series are not collected")
            continue
        one = replace(options, cluster=name, cluster_label=None,
                      scope=cluster_matcher(options.cluster_label or "", value))
        done.append((name, collect(one, progress=progress, warn=_naming(warn, name), stop=stop)))
    return done


def _naming(warn: WarnFn, name: str) -> WarnFn:
    def say(message: str) -> None:
        warn(f"cluster {name}: {message}")
    return say
