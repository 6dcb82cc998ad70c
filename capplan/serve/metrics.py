"""`/metrics`: capplan_* gauges in the Prometheus exposition format.

Two parts. The store's gauges (per-node overcommit and headroom, current vs recommended requests
per workload container, days to exhaustion, memory-pressure exposure, the last collection) come
from the same endpoint answers as the API, rendered once per data version and kept as text: a
scrape between two collections costs two stat() calls and a copy. The service's own series
(requests by route, process CPU and memory, scheduled collections) are live on every scrape.

Each store group reports `capplan_metrics_section_up{section}` so an alert can tell "no data"
from "no problem". The request counter is labelled by route template (`/api/v1/nodes`), with
every path no route matches counted as `other`, so scanners cannot grow the exposition.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from capplan.errors import CapplanError
from capplan.serve.answers import answer
from capplan.serve.database import collection_status, epoch_seconds, newest_sample
from capplan.serve.endpoints import ENDPOINTS, Endpoint
from capplan.serve.state import ServiceState

log = logging.getLogger("capplan.serve")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The label of every request whose path matches no route.
OTHER_ROUTE = "other"

Gauges = Sequence[tuple[str, str, str]]

NODE_GAUGES: Gauges = (
    # (metric name, column of the nodes table, help)
    ("capplan_node_cpu_allocatable_cores", "cpu_allocatable_cores", "Node allocatable CPU."),
    ("capplan_node_memory_allocatable_bytes", "memory_allocatable_bytes", "Node allocatable memory."),
    ("capplan_node_cpu_request_ratio", "cpu_request_ratio", "Sum of pod CPU requests / allocatable."),
    ("capplan_node_cpu_limit_ratio", "cpu_limit_ratio", "Sum of pod CPU limits / allocatable (+Inf: a container has no limit)."),
    ("capplan_node_memory_request_ratio", "memory_request_ratio", "Sum of pod memory requests / allocatable."),
    ("capplan_node_memory_limit_ratio", "memory_limit_ratio", "Sum of pod memory limits / allocatable (+Inf: a container has no limit)."),
    ("capplan_node_cpu_usage_p95_ratio", "cpu_usage_p95_ratio", "p95 of the node's summed container CPU usage / allocatable."),
    ("capplan_node_memory_usage_p95_ratio", "memory_usage_p95_ratio", "p95 of the node's summed working set / allocatable."),
    ("capplan_node_cpu_headroom_cores", "cpu_headroom_cores", "Allocatable CPU minus requests."),
    ("capplan_node_memory_headroom_bytes", "memory_headroom_bytes", "Allocatable memory minus requests."),
    ("capplan_node_cpu_physical_headroom_cores", "cpu_physical_headroom_cores", "Allocatable CPU minus p99 usage."),
    ("capplan_node_memory_physical_headroom_bytes", "memory_physical_headroom_bytes", "Allocatable memory minus p99 working set."),
    ("capplan_node_reserved_ok", "reserved_ok", "1 when capacity - allocatable meets the reservation guideline."),
    ("capplan_node_memory_pressure_day_probability", "memory_pressure_day_probability",
     "Fitted probability that the node's working set crosses allocatable - 100Mi in a day."),
)

RECOMMEND_GAUGES: Gauges = (
    ("capplan_container_cpu_request_cores", "cpu_request_current", "Current CPU request per workload container."),
    ("capplan_container_cpu_request_recommended_cores", "cpu_request_recommended", "Recommended CPU request."),
    ("capplan_container_cpu_limit_cores", "cpu_limit_current", "Current CPU limit (absent: unset)."),
    ("capplan_container_cpu_limit_recommended_cores", "cpu_limit_recommended", "Recommended CPU limit (absent: none)."),
    ("capplan_container_memory_request_bytes", "memory_request_current", "Current memory request."),
    ("capplan_container_memory_request_recommended_bytes", "memory_request_recommended", "Recommended memory request."),
    ("capplan_container_memory_limit_bytes", "memory_limit_current", "Current memory limit (absent: unset)."),
    ("capplan_container_memory_limit_recommended_bytes", "memory_limit_recommended", "Recommended memory limit."),
)

EVICTION_GAUGES: Gauges = (
    ("capplan_node_memory_peak_usage_ratio", "peak_usage_ratio", "Peak summed working set / memory capacity over the window."),
    ("capplan_node_memory_pressure_share", "share_under_hard", "Share of the window with memory.available under the hard eviction threshold."),
    ("capplan_node_memory_soft_pressure_share", "share_under_soft", "Share of the window with memory.available under the soft margin."),
    ("capplan_node_evictions_to_relieve", "evictions_to_relieve", "Pods the kubelet would evict to relieve the node's worst moment."),
)

FORECAST_GAUGES: Gauges = (
    ("capplan_forecast_days_to_exhaustion", "days_to_exhaustion", "Projected days until the scope exhausts the resource (+Inf: never within the horizon)."),
    ("capplan_forecast_days_to_exhaustion_low", "days_low", "Low end of the interval of days to exhaustion."),
    ("capplan_forecast_days_to_exhaustion_high", "days_high", "High end of the interval of days to exhaustion."),
)

ENDPOINT_BY_NAME = {e.name: e for e in ENDPOINTS}


def _number(value: Any) -> float | None:
    """A gauge value: numbers and booleans; 'inf' strings from to_records; None for unset."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value) if not math.isnan(value) else None
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return None


def _labelled(rows: list[dict[str, Any]], gauges: Gauges, labels: list[str]) -> list[Metric]:
    """One gauge family per (metric, column, help), one sample per row that has a value. With
    more than one cluster stored, every row has its cluster, and so does every sample (the
    `cluster` label first)."""
    if rows and "cluster" in rows[0]:
        labels = ["cluster", *labels]
    out: list[Metric] = []
    for metric, column, help_text in gauges:
        family = GaugeMetricFamily(metric, help_text, labels=labels)
        for row in rows:
            value = _number(row.get(column))
            if value is None and column == "days_to_exhaustion" and row.get("outlook") == "never":
                value = math.inf  # not within the horizon; too short or no limit stay absent
            if value is not None:
                family.add_metric([str(row.get(k) or "") for k in labels], value)
        out.append(family)
    return out


def _records(state: ServiceState, endpoint: Endpoint, **query: str) -> list[dict[str, Any]]:
    return answer(state, endpoint, {k: [v] for k, v in query.items()})


class StoreGauges:
    """The capplan_* gauges computed from the store (one prometheus_client collector)."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # names depend on what the store holds; no describe-time database access

    def collect(self) -> Iterator[Metric]:
        state = self.state
        up = GaugeMetricFamily("capplan_metrics_section_up",
                               "1 when the section's gauges were computed, 0 when it failed or has no data.",
                               labels=["section"])
        sections = (
            ("nodes", lambda: _labelled(_records(state, ENDPOINT_BY_NAME["nodes"]), NODE_GAUGES, ["node"])),
            ("eviction", lambda: _labelled(_records(state, ENDPOINT_BY_NAME["eviction"], view="nodes"),
                                           EVICTION_GAUGES, ["node"])),
            ("recommendations", lambda: _labelled(_records(state, ENDPOINT_BY_NAME["recommendations"]),
                                                  RECOMMEND_GAUGES, ["namespace", "owner_kind", "owner_name", "container"])),
            ("forecast", lambda: _labelled(_records(state, ENDPOINT_BY_NAME["forecast"]), FORECAST_GAUGES,
                                           ["scope", "resource", "basis"])),
        )
        families: list[Metric] = []
        try:
            families.extend(self._collection())
            up.add_metric(["collection"], 1.0)
        except CapplanError as err:
            log.warning("/metrics section collection: %s", err)
            up.add_metric(["collection"], 0.0)
            for section, _ in sections:
                up.add_metric([section], 0.0)
            yield up
            return
        for section, build in sections:
            try:
                families.extend(build())
                up.add_metric([section], 1.0)
            except CapplanError as err:
                log.info("/metrics section %s: %s", section, err)
                up.add_metric([section], 0.0)
            except Exception:  # a bug in one analysis must not take /metrics down
                log.exception("/metrics section %s failed", section)
                up.add_metric([section], 0.0)
        yield from families
        yield up

    def _collection(self) -> list[Metric]:
        with self.state.database.reader() as con:
            status = collection_status(con)
            newest = newest_sample(con)
        stamp = GaugeMetricFamily("capplan_last_collection_timestamp_seconds",
                                  "Unix time the newest successful collection finished.")
        if status.last_ok_finished_at is not None:
            stamp.add_metric([], epoch_seconds(status.last_ok_finished_at))
        duration = GaugeMetricFamily("capplan_last_collection_duration_seconds",
                                     "Seconds the newest finished collection run took.")
        if status.duration_seconds is not None:
            duration.add_metric([], status.duration_seconds)
        success = GaugeMetricFamily("capplan_last_collection_success",
                                    "1 when the newest collection run finished ok, 0 when it failed or was interrupted.")
        if status.status is not None and status.status != "running":
            success.add_metric([], 1.0 if status.status == "ok" else 0.0)
        samples = GaugeMetricFamily("capplan_last_collection_samples", "Samples the newest collection run stored.")
        if status.samples is not None:
            samples.add_metric([], float(status.samples))
        sample = GaugeMetricFamily("capplan_newest_sample_timestamp_seconds",
                                   "Unix time of the newest stored usage sample.")
        if newest is not None:
            sample.add_metric([], epoch_seconds(newest))
        return [stamp, duration, success, samples, sample]


class ServiceSeries:
    """Live series of this process: scheduled collections by outcome."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("capplan_service_collections",
                                   "In-process collections run since start, by outcome.", labels=["status"])
        for status, count in sorted(self.state.collections.items()):
            family.add_metric([status], float(count))
        yield family


class MetricsExporter:
    """The exposition: cached store gauges plus live service series."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        disable_created_metrics()  # *_created series only add noise to a scrape
        self.live = CollectorRegistry(auto_describe=False)
        self.requests = Counter("capplan_http_requests", "HTTP requests served, by route template and status.",
                                ["route", "code"], registry=self.live)
        self.renders = Counter("capplan_metrics_renders",
                               "Times the store gauges were computed (once per data version; scrapes between "
                               "two collections reuse the text).", registry=self.live)
        ProcessCollector(registry=self.live)
        self.live.register(ServiceSeries(state))
        self.store = CollectorRegistry(auto_describe=False)
        self.store.register(StoreGauges(state))

    def count_request(self, route: str, status: int) -> None:
        """Count one answered request under its route template (or OTHER_ROUTE)."""
        self.requests.labels(route, str(status)).inc()

    def exposition(self) -> bytes:
        """The text to answer a scrape with."""
        def render() -> bytes:
            self.renders.inc()
            return generate_latest(self.store)

        store_text: bytes = self.state.cached(("metrics",), render)
        return store_text + generate_latest(self.live)
