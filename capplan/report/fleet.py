"""The report of a fleet: one report per cluster, merged section by section with a leading
`cluster` column, after a fleet summary (one row per cluster: overcommit, memory pressure,
headroom, savings, days to exhaustion), so the clusters can be compared at a glance."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

import polars as pl

from capplan.report.model import Section

CLUSTER = "cluster"
FLEET_COLUMNS = {
    "cluster": pl.Utf8,
    "cpu_request_ratio": pl.Float64,
    "memory_request_ratio": pl.Float64,
    "cpu_limit_ratio": pl.Float64,
    "memory_limit_ratio": pl.Float64,
    "cpu_headroom_cores": pl.Float64,
    "memory_headroom_bytes": pl.Float64,
    "nodes": pl.Int64,
    "nodes_under_memory_pressure": pl.Int64,
    "cpu_savings_cores": pl.Float64,
    "memory_savings_bytes": pl.Float64,
    "days_to_exhaustion": pl.Float64,
    "soonest_exhaustion": pl.Utf8,
}


def _section(sections: list[Section], key: str) -> pl.DataFrame | None:
    return next((s.frame for s in sections if s.key == key), None)


def fleet_row(name: str, sections: list[Section], savings: tuple[float, float] | None) -> dict[str, object]:
    """One cluster's numbers from its report: requests and limits over allocatable (overcommit;
    a limit ratio is inf when a container has no limit) and headroom (section
    `cluster`), nodes past the eviction threshold (`eviction_nodes`), what right-sizing every
    container frees (`savings`: cores, bytes; negative adds) and the soonest exhaustion
    (`forecast`). Unknown stays None (an empty cell), never 0."""
    row: dict[str, object] = dict.fromkeys(FLEET_COLUMNS)
    row["cluster"] = name
    totals = _section(sections, "cluster")
    if totals is not None:
        for r in totals.iter_rows(named=True):
            if r["resource"] in ("cpu", "memory"):
                row[f"{r['resource']}_request_ratio"] = r["request_ratio"]
                row[f"{r['resource']}_limit_ratio"] = r["limit_ratio"]
                row["cpu_headroom_cores" if r["resource"] == "cpu" else "memory_headroom_bytes"] = r["headroom"]
                row["nodes"] = r["nodes"]
    eviction = _section(sections, "eviction_nodes")
    if eviction is not None and "under_pressure" in eviction.columns:
        row["nodes_under_memory_pressure"] = int(eviction["under_pressure"].fill_null(False).sum())
    if savings is not None:
        row["cpu_savings_cores"], row["memory_savings_bytes"] = savings
    forecast = _section(sections, "forecast")
    if forecast is not None and "days_to_exhaustion" in forecast.columns:
        soon = forecast.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion")
        if soon.height:
            first = soon.row(0, named=True)
            row["days_to_exhaustion"] = first["days_to_exhaustion"]
            row["soonest_exhaustion"] = f"{first['scope']} {first['resource']} {first['basis']}"
    return row


def _with_cluster(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.insert_column(0, pl.Series(CLUSTER, [name] * frame.height, dtype=pl.Utf8))


def _command_for(command: str, name: str) -> str:
    """`capplan eviction --node n` as the command for one cluster: `capplan eviction --cluster NAME --node n`."""
    words = command.split(" ", 2)
    if len(words) < 2 or words[0] != "capplan":
        return command
    return " ".join([words[0], words[1], "--cluster", shlex.quote(name), *words[2:]])


@dataclass
class FleetReport:
    """The fleet summary, each cluster's own report (its act-first commands naming the cluster),
    and every section merged across clusters with a leading cluster column (for JSON)."""

    fleet: Section
    clusters: list[tuple[str, list[Section]]]
    merged: list[Section]


def fleet_report(per_cluster: list[tuple[str, list[Section]]],
                 savings: dict[str, tuple[float, float] | None]) -> FleetReport:
    """The fleet summary, then every section of the clusters' reports merged in their order."""
    fleet = Section("fleet", "Fleet: one row per cluster",
                    pl.DataFrame([fleet_row(name, sections, savings.get(name)) for name, sections in per_cluster],
                                 schema=FLEET_COLUMNS),
                    "ratios: requests (limits) over allocatable; savings: what right-sizing every container frees "
                    "(negative: adds); days_to_exhaustion: the soonest crossing within the forecast horizon")
    clusters = []
    for name, sections in per_cluster:
        named = []
        for s in sections:
            frame = s.frame
            if s.key == "actions" and "command" in frame.columns:
                commands = [_command_for(c, name) if c is not None else None for c in frame["command"].to_list()]
                frame = frame.with_columns(pl.Series("command", commands, dtype=pl.Utf8))
            named.append(replace(s, frame=frame))
        clusters.append((name, named))
    keys = list(dict.fromkeys(s.key for _, sections in clusters for s in sections))
    merged = [fleet]
    for key in keys:
        parts = [(name, s) for name, sections in clusters for s in sections if s.key == key]
        merged.append(Section(key, parts[0][1].title,
                              pl.concat([_with_cluster(s.frame, name) for name, s in parts], how="diagonal_relaxed"),
                              "\n".join(f"{name}: {s.note}" for name, s in parts if s.note)))
    return FleetReport(fleet, clusters, merged)
