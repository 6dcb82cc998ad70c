"""`/metrics` of `capplan serve`: capplan_* gauges in the Prometheus exposition format.

The gauges are computed from the store on scrape (through the service's per-data-version cache,
so a scrape between two collections costs one fingerprint query), from the same library calls as
the API: per-node overcommit ratios and headroom, current vs recommended requests and limits per
workload container, days to exhaustion, memory-pressure exposure per node, and the last
collection's time and duration. Each group
reports `capplan_metrics_section_up{section}` so an alert can tell "no data" from "no problem".
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from capplan.errors import CapplanError

if TYPE_CHECKING:
    from capplan.service import Service

NODE_GAUGES: tuple[tuple[str, str, str], ...] = (
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

RECOMMEND_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("capplan_container_cpu_request_cores", "cpu_request_current", "Current CPU request per workload container."),
    ("capplan_container_cpu_request_recommended_cores", "cpu_request_recommended", "Recommended CPU request."),
    ("capplan_container_cpu_limit_cores", "cpu_limit_current", "Current CPU limit (absent: unset)."),
    ("capplan_container_cpu_limit_recommended_cores", "cpu_limit_recommended", "Recommended CPU limit (absent: none)."),
    ("capplan_container_memory_request_bytes", "memory_request_current", "Current memory request."),
    ("capplan_container_memory_request_recommended_bytes", "memory_request_recommended", "Recommended memory request."),
    ("capplan_container_memory_limit_bytes", "memory_limit_current", "Current memory limit (absent: unset)."),
    ("capplan_container_memory_limit_recommended_bytes", "memory_limit_recommended", "Recommended memory limit."),
)

EVICTION_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("capplan_node_memory_peak_usage_ratio", "peak_usage_ratio", "Peak summed working set / memory capacity over the window."),
    ("capplan_node_memory_pressure_share", "share_under_hard", "Share of the window with memory.available under the hard eviction threshold."),
    ("capplan_node_memory_soft_pressure_share", "share_under_soft", "Share of the window with memory.available under the soft margin."),
    ("capplan_node_evictions_to_relieve", "evictions_to_relieve", "Pods the kubelet would evict to relieve the node's worst moment."),
)

FORECAST_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("capplan_forecast_days_to_exhaustion", "days_to_exhaustion", "Projected days until the scope exhausts the resource (+Inf: never within the horizon)."),
    ("capplan_forecast_days_to_exhaustion_low", "days_low", "Low end of the interval of days to exhaustion."),
    ("capplan_forecast_days_to_exhaustion_high", "days_high", "High end of the interval of days to exhaustion."),
)


def _number(value: Any) -> float | None:
    """A gauge value: numbers and booleans; 'inf' strings from to_records; None for unset."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value) if not math.isnan(value) else None
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return None


class MetricsExporter:
    """A registry with the service's own counters and a collector that reads the store."""

    def __init__(self, service: Service) -> None:
        self.service = service
        disable_created_metrics()  # *_created series only add noise to a scrape
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("capplan_http_requests", "HTTP requests served, by route and status.",
                                ["route", "code"], registry=self.registry)
        ProcessCollector(registry=self.registry)
        self.registry.register(_StoreCollector(service))
        self._lock = threading.Lock()

    def count_request(self, route: str, status: int) -> None:
        """Count one answered request."""
        self.requests.labels(route, str(status)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text to answer a scrape with, and its content type."""
        with self._lock:  # one scrape computes at a time
            return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StoreCollector:
    """Builds the capplan_* gauges from the store on each scrape."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        # Names depend on what the store holds; no describe-time DB access.
        return []

    def collect(self) -> Iterator[Metric]:
        service = self.service
        up = GaugeMetricFamily("capplan_metrics_section_up",
                               "1 when the section's gauges were computed, 0 when it failed or has no data.",
                               labels=["section"])
        errors: dict[str, str] = {}
        families: list[Metric] = []
        try:
            with service.database.reader() as con:
                families.extend(self._collection(con))
                up.add_metric(["collection"], 1.0)
                for section, builder in (("nodes", self._nodes), ("eviction", self._eviction),
                                         ("recommendations", self._recommend), ("forecast", self._forecast)):
                    try:
                        families.extend(builder(con))
                        up.add_metric([section], 1.0)
                    except CapplanError as err:
                        errors[section] = str(err)
                        up.add_metric([section], 0.0)
                    except Exception as exc:  # a bug in one analysis must not take /metrics down
                        errors[section] = f"internal error: {type(exc).__name__}: {exc}"
                        up.add_metric([section], 0.0)
                        print(f"capplan serve: /metrics section {section}: {errors[section]}",
                              file=sys.stderr, flush=True)
        except CapplanError as err:
            errors["database"] = str(err)
            up.add_metric(["collection"], 0.0)
        yield from families
        yield up
        collections = GaugeMetricFamily("capplan_service_collections",
                                        "In-process collections run since start, by outcome.", labels=["status"])
        for status, count in sorted(service.collections.items()):
            collections.add_metric([status], float(count))
        yield collections

    def _collection(self, con: Any) -> list[Metric]:
        from capplan.service import _epoch, collection_status

        status = collection_status(con)
        out: list[Metric] = []
        stamp = GaugeMetricFamily("capplan_last_collection_timestamp_seconds",
                                  "Unix time the newest successful collection finished.")
        if status.last_ok_finished_at is not None:
            stamp.add_metric([], _epoch(status.last_ok_finished_at))
        out.append(stamp)
        duration = GaugeMetricFamily("capplan_last_collection_duration_seconds",
                                     "Seconds the newest finished collection run took.")
        success = GaugeMetricFamily("capplan_last_collection_success",
                                    "1 when the newest collection run finished ok, 0 when it failed or was interrupted.")
        samples = GaugeMetricFamily("capplan_last_collection_samples", "Samples the newest collection run stored.")
        if status.duration_seconds is not None:
            duration.add_metric([], status.duration_seconds)
        if status.status is not None and status.status != "running":
            success.add_metric([], 1.0 if status.status == "ok" else 0.0)
        if status.samples is not None:
            samples.add_metric([], float(status.samples))
        out.extend([duration, success, samples])
        newest = con.execute("SELECT max(ts) FROM usage_samples").fetchone()
        sample = GaugeMetricFamily("capplan_newest_sample_timestamp_seconds", "Unix time of the newest stored usage sample.")
        if newest and newest[0] is not None:
            sample.add_metric([], _epoch(newest[0]))
        out.append(sample)
        return out

    def _records(self, name: str) -> list[dict[str, Any]]:
        return self.service.api(name, {})

    def _nodes(self, _con: Any) -> list[Metric]:
        return _per_node_families(self._records("nodes"), NODE_GAUGES)

    def _eviction(self, _con: Any) -> list[Metric]:
        return _per_node_families(self.service.api("eviction", {"view": ["nodes"]}), EVICTION_GAUGES)

    def _recommend(self, _con: Any) -> list[Metric]:
        rows = self._records("recommendations")
        labels = ["namespace", "owner_kind", "owner_name", "container"]
        out: list[Metric] = []
        for metric, column, help_text in RECOMMEND_GAUGES:
            family = GaugeMetricFamily(metric, help_text, labels=labels)
            for row in rows:
                value = _number(row.get(column))
                if value is not None:
                    family.add_metric([str(row.get(k) or "") for k in labels], value)
            out.append(family)
        return out

    def _forecast(self, _con: Any) -> list[Metric]:
        rows = self._records("forecast")
        labels = ["scope", "resource", "basis"]
        out: list[Metric] = []
        for metric, column, help_text in FORECAST_GAUGES:
            family = GaugeMetricFamily(metric, help_text, labels=labels)
            for row in rows:
                value = _number(row.get(column))
                if value is None and row.get("outlook") == "never":
                    value = math.inf  # not within the horizon; too short or no limit stay absent
                if value is not None:
                    family.add_metric([str(row.get(k) or "") for k in labels], value)
            out.append(family)
        return out


def _per_node_families(rows: list[dict[str, Any]], gauges: Any) -> list[Metric]:
    """One gauge family per (metric, column, help) with a `node` label, from API rows."""
    out: list[Metric] = []
    for metric, column, help_text in gauges:
        family = GaugeMetricFamily(metric, help_text, labels=["node"])
        for row in rows:
            value = _number(row.get(column))
            if value is not None:
                family.add_metric([row["node"]], value)
        out.append(family)
    return out
