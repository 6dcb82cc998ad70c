"""`capplan report --format html`: one self-contained HTML page with charts.

Everything is inline (CSS, SVG drawn here in Python, a few lines of script that only mark the
charts as rendered), so the file opens without a network. The charts show what people would
rather look at than read:

- per node: requests, limits and p95 usage against allocatable, for CPU and memory;
- for the nodes at risk: the summed working set over time against allocatable and the kubelet's
  hard eviction threshold (capacity - 100Mi memory.available);
- for the top recommendations: the distribution of usage samples against the current and the
  recommended request (and limit);
- forecasts: the daily history, the trend projected to allocatable, and the interval.

Below the charts come all report sections as tables (the same frames as `--format json`).
"""

from __future__ import annotations

import html
import importlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from capplan import render, store
from capplan.analysis.nodes import nodes_report
from capplan.errors import CapplanError
from capplan.quantity import format_bytes, format_cpu
from capplan.report import ReportOptions, Section, build_report

MiB = 2**20
# kubelet default: memory.available<100Mi (pkg/kubelet/apis/config/v1beta1 defaults, evictionHard).
EVICTION_HARD_BYTES = 100 * MiB
# A node is "at risk" when its working-set peak reaches this share of the eviction threshold.
AT_RISK_SHARE = 0.9
MAX_RISK_CHARTS = 4
MAX_RECOMMENDATION_CHARTS = 4
MAX_FORECAST_CHARTS = 6
MAX_POINTS = 700
MAX_NODE_BARS = 40  # beyond this the node charts show the most loaded nodes

COLORS = {
    "requests": "#4c78a8", "limits": "#f58518", "usage": "#54a24b", "allocatable": "#222222",
    "threshold": "#e45756", "recommended": "#2ca02c", "current": "#555555", "band": "#9ecae9",
    "history": "#4c78a8", "trend": "#e45756",
}


# --- small SVG toolkit ------------------------------------------------------------------------------


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _nice_step(span: float, ticks: int = 5) -> float:
    """A 1/2/5 x 10^k step giving about `ticks` ticks over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _ticks(lo: float, hi: float, ticks: int = 5) -> list[float]:
    step = _nice_step(hi - lo, ticks)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "bytes":
        return format_bytes(value) or "0"
    if unit == "cores":
        return "0" if value == 0 else (format_cpu(value) or "0")
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "days":
        return f"{value:.0f}d"
    return f"{value:g}"


def _byte_scale(hi: float) -> tuple[float, str]:
    """Axis unit for bytes: Gi or Mi."""
    return (2**30, "Gi") if hi >= 2**30 else (MiB, "Mi")


@dataclass
class Frame:
    """Pixel frame of a chart's plot area."""

    width: int = 760
    height: int = 260
    left: int = 70
    right: int = 20
    top: int = 30
    bottom: int = 40

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


def _svg_open(frame: Frame, title: str, kind: str) -> list[str]:
    return [
        f'<svg class="chart" data-kind="{_esc(kind)}" role="img" aria-label="{_esc(title)}" '
        f'width="{frame.width}" height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<text class="title" x="{frame.left}" y="18">{_esc(title)}</text>',
    ]


def _legend(frame: Frame, items: list[tuple[str, str, str]]) -> list[str]:
    """items: (label, colour, style: box|line|dash)."""
    out = []
    x = float(frame.left)
    for label, colour, style in items:
        if style == "box":
            out.append(f'<rect x="{x:.0f}" y="27" width="12" height="10" fill="{colour}"/>')
        else:
            dash = ' stroke-dasharray="5,3"' if style == "dash" else ""
            out.append(f'<line x1="{x:.0f}" y1="32" x2="{x + 12:.0f}" y2="32" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text class="legend" x="{x + 16:.0f}" y="36">{_esc(label)}</text>')
        x += 30 + 6.5 * len(label)
    return out


def _y_axis(frame: Frame, lo: float, hi: float, label_of, scale: float = 1.0) -> list[str]:
    """Grid lines and labels; ticks are nice numbers in units of `scale` (e.g. GiB)."""
    out = []
    for tick in (t * scale for t in _ticks(lo / scale, hi / scale)):
        y = frame.top + frame.plot_h * (1 - (tick - lo) / (hi - lo))
        out.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.left + frame.plot_w}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(label_of(tick))}</text>')
    return out


def _time_axis(frame: Frame, t0: float, t1: float) -> list[str]:
    """Ticks on whole days (or hours for short spans); times are epoch seconds (UTC)."""
    span = t1 - t0
    step = 86400 * max(1, math.ceil(span / 86400 / 8)) if span > 2 * 86400 else 3600 * max(1, math.ceil(span / 3600 / 8))
    first = math.ceil(t0 / step) * step
    out = []
    t = first
    while t <= t1:
        x = frame.left + frame.plot_w * (t - t0) / span
        stamp = datetime.fromtimestamp(t, tz=timezone.utc)
        text = stamp.strftime("%m-%d") if step >= 86400 else stamp.strftime("%H:%M")
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.top + frame.plot_h}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{frame.top + frame.plot_h + 16}" text-anchor="middle">{text}</text>')
        t += step
    return out


def _epoch(ts: datetime) -> float:
    return ts.replace(tzinfo=timezone.utc).timestamp() if ts.tzinfo is None else ts.timestamp()


# --- charts -----------------------------------------------------------------------------------------


def most_loaded(nodes: pl.DataFrame, limit: int = MAX_NODE_BARS) -> pl.DataFrame:
    """The `limit` nodes with the highest request or p95 usage ratio (cpu or memory)."""
    if nodes.height <= limit:
        return nodes
    load = pl.max_horizontal(*[pl.col(c).fill_null(0.0) for c in (
        "cpu_request_ratio", "memory_request_ratio", "cpu_usage_p95_ratio", "memory_usage_p95_ratio") if c in nodes.columns])
    return nodes.with_columns(load.alias("_load")).sort("_load", descending=True).head(limit).drop("_load")


def node_bars_svg(nodes: pl.DataFrame, resource: str) -> str:
    """Horizontal bars per node: requests, limits and p95 usage as % of allocatable, with the
    allocatable line at 100% (an unbounded limit sum is drawn to the edge and marked)."""
    unit = "cores" if resource == "cpu" else "bytes"
    rows = nodes.sort("node").to_dicts()
    row_h, bar_h = 34, 8
    frame = Frame(height=50 + row_h * len(rows) + 30, left=80, top=48, bottom=30)
    measures = [("requests", f"{resource}_requests_{unit}"), ("limits", f"{resource}_limits_{unit}"),
                ("usage", f"{resource}_usage_p95_{unit}")]
    finite = [r[c] / r[f"{resource}_allocatable_{unit}"] * 100 for r in rows for _, c in measures
              if r.get(c) is not None and math.isfinite(r[c]) and r[f"{resource}_allocatable_{unit}"]]
    hi = max([110.0] + [v * 1.08 for v in finite])
    hi = min(hi, 400.0)
    title = f"{'CPU' if resource == 'cpu' else 'Memory'}: requests, limits and p95 usage per node, % of allocatable"
    out = _svg_open(frame, title, f"node-{resource}")
    out += _legend(frame, [("requests", COLORS["requests"], "box"), ("limits", COLORS["limits"], "box"),
                           ("p95 usage", COLORS["usage"], "box"), ("allocatable", COLORS["allocatable"], "dash")])
    x_of = lambda pct: frame.left + frame.plot_w * min(pct, hi) / hi  # noqa: E731
    for tick in _ticks(0, hi):
        x = x_of(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.top + row_h * len(rows)}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{frame.top + row_h * len(rows) + 16}" text-anchor="middle">{tick:.0f}%</text>')
    out.append('<g class="marks">')
    for i, row in enumerate(rows):
        y0 = frame.top + i * row_h + 4
        alloc = row[f"{resource}_allocatable_{unit}"] or 0
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y0 + 16}" text-anchor="end">{_esc(row["node"])}</text>')
        for j, (label, column) in enumerate(measures):
            value = row.get(column)
            if value is None or not alloc:
                continue
            y = y0 + j * (bar_h + 1)
            unbounded = not math.isfinite(value)
            pct = hi if unbounded else value / alloc * 100
            width = max(1.0, x_of(pct) - frame.left)
            shown = "unbounded (a container has no limit)" if unbounded else f"{_fmt(value, unit)} = {pct:.0f}%"
            tip = f"{row['node']} {label}: {shown} of {_fmt(alloc, unit)} allocatable"
            colour = COLORS[label]
            faded = ' fill-opacity="0.45"' if unbounded else ""
            out.append(f'<rect x="{frame.left}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="{colour}"'
                       f'{faded}><title>{_esc(tip)}</title></rect>')
            if unbounded:
                out.append(f'<text class="tick" x="{frame.left + width - 4:.1f}" y="{y + bar_h - 1}" text-anchor="end">∞</text>')
    out.append("</g>")
    x100 = x_of(100)
    out.append(f'<line x1="{x100:.1f}" y1="{frame.top - 4}" x2="{x100:.1f}" y2="{frame.top + row_h * len(rows)}" '
               f'stroke="{COLORS["allocatable"]}" stroke-width="1.5" stroke-dasharray="5,3"/>')
    out.append("</svg>")
    return "\n".join(out)


def _downsample_max(ts: np.ndarray, values: np.ndarray, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's maximum so that peaks survive thinning."""
    if len(ts) <= points:
        return ts, values
    edges = np.linspace(0, len(ts), points + 1).astype(int)
    keep_t, keep_v = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi > lo:
            k = lo + int(np.argmax(values[lo:hi]))
            keep_t.append(ts[k])
            keep_v.append(values[k])
    return np.array(keep_t), np.array(keep_v)


def line_chart_svg(title: str, kind: str, unit: str, lines: list[dict[str, Any]], hlines: list[dict[str, Any]],
                   band: dict[str, Any] | None = None, note: str = "", points: dict[str, Any] | None = None) -> str:
    """A time chart: `lines` of {label, t (epoch s), y, colour, dash}, horizontal `hlines` of
    {label, y, colour, dash}, an optional `band` {t, lo, hi, label}, and optional marked
    `points` {label, t, y, colour}."""
    frame = Frame(height=290, top=46)
    all_t = np.concatenate([np.asarray(line["t"], dtype=float) for line in lines]
                           + ([np.asarray(band["t"], dtype=float)] if band else []))
    all_y = np.concatenate([np.asarray(line["y"], dtype=float) for line in lines]
                           + ([np.asarray(band["hi"], dtype=float), np.asarray(band["lo"], dtype=float)] if band else [])
                           + [np.array([h["y"] for h in hlines], dtype=float)])
    all_y = all_y[np.isfinite(all_y)]
    t0, t1 = float(all_t.min()), float(all_t.max())
    if t1 <= t0:
        t1 = t0 + 3600
    y_hi = float(all_y.max()) * 1.08 if all_y.size else 1.0
    y_lo = 0.0
    scale, suffix = (_byte_scale(y_hi) if unit == "bytes" else (1.0, ""))
    label_of = (lambda v: f"{v / scale:g}{suffix}") if unit == "bytes" else (lambda v: _fmt(v, unit))  # noqa: E731
    x_of = lambda t: frame.left + frame.plot_w * (t - t0) / (t1 - t0)  # noqa: E731
    y_of = lambda v: frame.top + frame.plot_h * (1 - (v - y_lo) / (y_hi - y_lo))  # noqa: E731
    out = _svg_open(frame, title, kind)
    out += _legend(frame, [(l["label"], l["colour"], "dash" if l.get("dash") else "line") for l in lines]
                   + ([(band["label"], COLORS["band"], "box")] if band else [])
                   + [(h["label"], h["colour"], "dash" if h.get("dash") else "line") for h in hlines]
                   + ([(points["label"], points["colour"], "box")] if points is not None and len(points["t"]) else []))
    out += _y_axis(frame, y_lo, y_hi, label_of, scale)
    out += _time_axis(frame, t0, t1)
    out.append('<g class="marks">')
    if band:
        top = [f"{x_of(t):.1f},{y_of(min(v, y_hi)):.1f}" for t, v in zip(band["t"], band["hi"])]
        bottom = [f"{x_of(t):.1f},{y_of(max(v, y_lo)):.1f}" for t, v in zip(band["t"][::-1], band["lo"][::-1])]
        out.append(f'<polygon points="{" ".join(top + bottom)}" fill="{COLORS["band"]}" fill-opacity="0.5">'
                   f'<title>{_esc(band["label"])}</title></polygon>')
    for line in lines:
        t, y = np.asarray(line["t"], dtype=float), np.asarray(line["y"], dtype=float)
        ok = np.isfinite(y)
        coords = " ".join(f"{x_of(a):.1f},{y_of(min(b, y_hi)):.1f}" for a, b in zip(t[ok], y[ok]))
        dash = ' stroke-dasharray="6,4"' if line.get("dash") else ""
        out.append(f'<polyline points="{coords}" fill="none" stroke="{line["colour"]}" stroke-width="1.5"{dash}>'
                   f'<title>{_esc(line["label"])}</title></polyline>')
    if points is not None:
        for a, b in zip(points["t"], points["y"]):
            stamp = datetime.fromtimestamp(float(a), tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
            out.append(f'<circle cx="{x_of(a):.1f}" cy="{y_of(min(b, y_hi)):.1f}" r="3" fill="{points["colour"]}">'
                       f'<title>{stamp} UTC: {_esc(_fmt(b, unit))}</title></circle>')
    out.append("</g>")
    for h in hlines:
        y = y_of(h["y"])
        dash = ' stroke-dasharray="5,3"' if h.get("dash") else ""
        out.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{frame.left + frame.plot_w}" y2="{y:.1f}" '
                   f'stroke="{h["colour"]}" stroke-width="1.5"{dash}><title>{_esc(h["label"])}: '
                   f'{_esc(_fmt(h["y"], unit))}</title></line>')
    if note:
        out.append(f'<text class="legend" x="{frame.left}" y="{frame.height - 6}">{_esc(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def histogram_svg(title: str, kind: str, unit: str, values: np.ndarray, markers: list[dict[str, Any]]) -> str:
    """Distribution of usage samples with vertical markers {label, x, colour, dash}."""
    frame = Frame(width=480, height=230, left=45, right=14, top=50, bottom=34)
    values = values[np.isfinite(values)]
    samples = int(values.size)
    marks_x = [m["x"] for m in markers if m["x"] is not None and math.isfinite(m["x"])]
    hi = max([float(np.quantile(values, 0.999)) if values.size else 0.0] + marks_x) * 1.1 or 1.0
    counts, edges = np.histogram(np.clip(values, 0, hi), bins=30, range=(0, hi))
    share = counts / max(1, counts.sum()) * 100
    y_hi = max(float(share.max()) * 1.1, 1.0)
    scale, suffix = (_byte_scale(hi) if unit == "bytes" else (1.0, ""))
    x_label = (lambda v: f"{v / scale:g}{suffix}") if unit == "bytes" else (lambda v: _fmt(v, "cores"))  # noqa: E731
    x_of = lambda v: frame.left + frame.plot_w * v / hi  # noqa: E731
    y_of = lambda v: frame.top + frame.plot_h * (1 - v / y_hi)  # noqa: E731
    out = _svg_open(frame, title, kind)
    out[0] = out[0].replace('<svg class="chart"', f'<svg class="chart" data-samples="{samples}"', 1)
    legend_y = 36
    x = frame.left
    for m in markers:
        if m["x"] is None:
            continue
        dash = ' stroke-dasharray="4,3"' if m.get("dash") else ""
        out.append(f'<line x1="{x}" y1="{legend_y - 4}" x2="{x + 14}" y2="{legend_y - 4}" stroke="{m["colour"]}" stroke-width="2"{dash}/>')
        out.append(f'<text class="legend" x="{x + 18}" y="{legend_y}">{_esc(m["label"])} {_esc(_fmt(m["x"], unit))}</text>')
        x += 34 + 6.5 * (len(m["label"]) + 1 + len(_fmt(m["x"], unit)))
    out += _y_axis(frame, 0, y_hi, lambda v: f"{v:.0f}%")
    for tick in (t * scale for t in _ticks(0, hi / scale, 4)):
        out.append(f'<text class="tick" x="{x_of(tick):.1f}" y="{frame.top + frame.plot_h + 15}" text-anchor="middle">{_esc(x_label(tick))}</text>')
    out.append('<g class="marks">')
    for count, pct, lo_edge, hi_edge in zip(counts, share, edges[:-1], edges[1:]):
        if count == 0:
            continue
        x0, x1 = x_of(lo_edge), x_of(hi_edge)
        y = y_of(pct)
        tip = f"{x_label(lo_edge)}..{x_label(hi_edge)}: {pct:.1f}% of samples"
        out.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
                   f'height="{frame.top + frame.plot_h - y:.1f}" fill="{COLORS["usage"]}"><title>{_esc(tip)}</title></rect>')
    out.append("</g>")
    for m in markers:
        if m["x"] is None or not math.isfinite(m["x"]):
            continue
        xm = x_of(min(m["x"], hi))
        dash = ' stroke-dasharray="4,3"' if m.get("dash") else ""
        out.append(f'<line x1="{xm:.1f}" y1="{frame.top}" x2="{xm:.1f}" y2="{frame.top + frame.plot_h}" '
                   f'stroke="{m["colour"]}" stroke-width="2"{dash}><title>{_esc(m["label"])}: '
                   f'{_esc(_fmt(m["x"], unit))}</title></line>')
    out.append("</svg>")
    return "\n".join(out)


# --- data for the charts -------------------------------------------------------------------------------


def _optional(module_name: str) -> Any | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def memory_risk_charts(con: duckdb.DuckDBPyConnection, nodes: pl.DataFrame, start: datetime, end: datetime) -> tuple[list[str], str]:
    """Line charts of the summed working set of the nodes at risk, and a sentence about them."""
    series = store.query(con, "html_node_memory_series", {"start": start, "end": end})
    if series.is_empty():
        return [], "No usage samples in the window."
    info = {r["node"]: r for r in nodes.to_dicts()}
    peaks = series.group_by("node").agg(pl.col("memory_bytes").max().alias("peak")).to_dicts()
    ranked = []
    for row in peaks:
        node = info.get(row["node"])
        if node is None or not node.get("memory_capacity_bytes"):
            continue
        threshold = node["memory_capacity_bytes"] - EVICTION_HARD_BYTES
        ranked.append((float(row["peak"]) / threshold, row["node"], threshold))
    ranked.sort(reverse=True)
    at_risk = [r for r in ranked if r[0] >= AT_RISK_SHARE][:MAX_RISK_CHARTS]
    if at_risk:
        sentence = (f"{len([r for r in ranked if r[0] >= AT_RISK_SHARE])} node(s) reach {AT_RISK_SHARE:.0%} or more of "
                    "the kubelet's hard eviction threshold (memory.available &lt; 100Mi).")
    else:
        at_risk = ranked[:1]
        sentence = (f"No node reaches {AT_RISK_SHARE:.0%} of its eviction threshold; the closest one is shown."
                    if ranked else "No node data.")
    charts = []
    for ratio, node, threshold in at_risk:
        part = series.filter(pl.col("node") == node).sort("ts")
        t = np.array([_epoch(x) for x in part["ts"].to_list()])
        y = part["memory_bytes"].cast(pl.Float64).to_numpy()
        # every moment over the threshold is marked, even where the line is thinned
        over_t, over_y = t[y >= threshold], y[y >= threshold]
        t, y = _downsample_max(t, y)
        alloc = info[node]["memory_allocatable_bytes"]
        peak = float(np.max(y))  # thinning keeps each bucket's maximum, so the peak survives
        charts.append(line_chart_svg(
            f"{node}: working set of its containers vs eviction threshold "
            f"(peak {format_bytes(peak)} = {ratio:.0%} of {format_bytes(threshold)})",
            "memory-risk", "bytes",
            [{"label": "working set", "t": t, "y": y, "colour": COLORS["usage"]}],
            [{"label": "allocatable", "y": float(alloc), "colour": COLORS["allocatable"], "dash": True},
             {"label": "eviction threshold", "y": float(threshold), "colour": COLORS["threshold"]}],
            points={"label": "at or over the threshold", "t": over_t, "y": over_y,
                    "colour": COLORS["threshold"]},
        ))
    return charts, sentence


SEVERITY_RANK = {"critical": 3, "warning": 2, "ok": 1, "good": 0}


def top_recommendations(frame: pl.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The rows most worth a look: highest severity, then the largest change."""
    rows = frame.to_dicts()

    def size(row: dict[str, Any]) -> float:
        cpu = abs((row.get("cpu_request_recommended") or 0) - (row.get("cpu_request_current") or 0))
        mem = abs((row.get("memory_request_recommended") or 0) - (row.get("memory_request_current") or 0)) / 2**30
        return cpu + mem

    rows = [r for r in rows if r.get("cpu_request_recommended") is not None or r.get("memory_request_recommended") is not None]
    rows.sort(key=lambda r: (SEVERITY_RANK.get(str(r.get("severity")), 0), size(r)), reverse=True)
    return rows[:limit]


def recommendation_charts(con: duckdb.DuckDBPyConnection, options: ReportOptions, start: datetime,
                          end: datetime) -> tuple[list[str], str]:
    """Usage distributions vs current and recommended requests for the top recommendations."""
    module = _optional("capplan.analysis.recommend")
    if module is None or not hasattr(module, "recommend"):
        return [], "Recommendations are not part of this build."
    frame = module.recommend(con, window=options.window, namespaces=options.namespaces or None)
    top = top_recommendations(frame, MAX_RECOMMENDATION_CHARTS)
    charts = []
    for row in top:
        usage = store.query(con, "html_workload_container_usage", {
            "start": start, "end": end, "namespace": row["namespace"], "container": row["container"]})
        mine = usage.filter(pl.col("owner_name") == row["owner_name"])
        if mine.is_empty():
            continue
        name = f"{row['namespace']}/{row['owner_name']} {row['container']}"
        cpu = histogram_svg(
            f"{name}: CPU usage", "usage-cpu", "cores", mine["cpu_cores"].cast(pl.Float64).to_numpy(),
            [{"label": "request now", "x": row.get("cpu_request_current"), "colour": COLORS["current"], "dash": True},
             {"label": "recommended", "x": row.get("cpu_request_recommended"), "colour": COLORS["recommended"]},
             {"label": "limit now", "x": row.get("cpu_limit_current"), "colour": COLORS["limits"], "dash": True}])
        mem = histogram_svg(
            f"{name}: memory working set", "usage-memory", "bytes", mine["memory_bytes"].cast(pl.Float64).to_numpy(),
            [{"label": "request now", "x": row.get("memory_request_current"), "colour": COLORS["current"], "dash": True},
             {"label": "recommended", "x": row.get("memory_request_recommended"), "colour": COLORS["recommended"]},
             {"label": "limit now", "x": row.get("memory_limit_current"), "colour": COLORS["limits"], "dash": True}])
        reason = _esc(row.get("reason") or "")
        charts.append(f'<div class="pair"><div>{cpu}</div><div>{mem}</div></div>'
                      f'<p class="note">{_esc(row.get("severity") or "")}: {reason}</p>')
    sentence = (f"Top {len(charts)} of {frame.height} workload containers by severity and size of the change; "
                "bars: share of usage samples in the window.")
    return charts, sentence


def _forecast_daily(fc: Any, inputs: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The daily series and limits the forecast fits, by the same steps as fc.forecast (which
    returns only the fitted table)."""
    if hasattr(fc, "daily_series"):
        return fc.daily_series(inputs)
    cluster_ts = inputs.usage_sums.filter(pl.col("scope_kind") == "cluster")["ts"]
    days = fc.full_days(cluster_ts) if cluster_ts.len() else None
    daily = pl.concat([fc.daily_requests(inputs.pod_days, inputs.pools, days), fc.daily_usage(inputs.usage_sums, days)])
    return daily, fc.scope_limits(inputs.nodes, inputs.pools, inputs.quotas, daily)


def forecast_curves(con: duckdb.DuckDBPyConnection, options: ReportOptions,
                    limit: int = MAX_FORECAST_CHARTS) -> list[dict[str, Any]]:
    """The forecasts worth drawing (exhausted or within the horizon first, then the fastest
    growing), each with its daily history, trend line and interval, from the same steps as
    capplan.analysis.forecast.forecast (default horizon, pool label and minimum history)."""
    fc = _optional("capplan.analysis.forecast")
    if fc is None:
        return []
    inputs = fc.load_forecast_inputs(con, options.window)
    daily, limits = _forecast_daily(fc, inputs)
    horizon = fc.DEFAULT_HORIZON / timedelta(days=1)
    table = fc.forecast_series(daily, limits, horizon, fc.DEFAULT_MIN_DAYS)
    if options.namespaces:
        table = table.filter((pl.col("scope_kind") != "namespace") | pl.col("scope_name").is_in(options.namespaces))
    drawable = table.filter(pl.col("slope_per_day").is_not_null() & pl.col("allocatable").is_not_null()
                            & (pl.col("allocatable") > 0))
    urgent = drawable.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion")
    growing = drawable.filter(pl.col("days_to_exhaustion").is_null() & (pl.col("slope_per_day") > 0)).with_columns(
        (pl.col("slope_per_day") / pl.col("allocatable")).alias("_growth")).sort("_growth", descending=True).drop("_growth")
    chosen = pl.concat([urgent, growing]).head(limit).to_dicts()
    keys = ["scope_kind", "scope_name", "resource", "basis"]
    curves = []
    for row in chosen:
        hist = daily.filter(*[pl.col(k) == row[k] for k in keys]).filter(
            pl.col("value").is_not_null() & pl.col("value").is_finite()).sort("day")
        if hist.is_empty():
            continue
        hist_days = hist["day"].to_list()
        last = hist_days[-1]
        to_dt = lambda d, extra=0.0: datetime(d.year, d.month, d.day) + timedelta(days=extra)  # noqa: E731
        ahead = row["days_to_exhaustion"] if row["days_to_exhaustion"] is not None else horizon
        ahead = float(min(horizon, max(7.0, ahead * 1.15)))
        level, slope = row["trend_current"], row["slope_per_day"]
        back = (last - hist_days[0]).days
        steps = np.linspace(0, ahead, 25)
        curves.append({
            **{k: row[k] for k in ("scope", "resource", "basis", "allocatable", "days_to_exhaustion", "days_low",
                                    "days_high", "reason")},
            "history_t": [to_dt(d) for d in hist_days], "history_y": hist["value"].to_list(),
            "trend_t": [to_dt(last, -back)] + [to_dt(last, float(x)) for x in steps],
            "trend_y": [level - slope * back] + [level + slope * float(x) for x in steps],
            "band_t": [to_dt(last, float(x)) for x in steps],
            "band_lo": [level + row["slope_low_per_day"] * float(x) for x in steps],
            "band_hi": [level + row["slope_high_per_day"] * float(x) for x in steps],
        })
    return curves


def forecast_charts(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> tuple[list[str], str]:
    """Forecast lines with their interval for the scopes that run out soonest."""
    if _optional("capplan.analysis.forecast") is None:
        return [], "Forecasts are not part of this build."
    charts = []
    for curve in forecast_curves(con, options):
        unit = "cores" if curve["resource"] == "cpu" else "bytes"
        lines = [{"label": f"daily {curve['basis']}", "t": [_epoch(d) for d in curve["history_t"]],
                  "y": curve["history_y"], "colour": COLORS["history"]},
                 {"label": "trend", "t": [_epoch(d) for d in curve["trend_t"]], "y": curve["trend_y"],
                  "colour": COLORS["trend"], "dash": True}]
        band = {"t": [_epoch(d) for d in curve["band_t"]], "lo": curve["band_lo"], "hi": curve["band_hi"],
                "label": "90% interval of the slope"}
        days = curve.get("days_to_exhaustion")
        if days == 0:
            when = "already at or above its limit"
        elif days is not None:
            low, high = curve.get("days_low"), curve.get("days_high")
            span = f" ({low:.0f}-{high:.0f})" if low is not None and high is not None else ""
            when = f"reaches the limit in {days:.0f} days{span}"
        else:
            when = "not within the horizon"
        charts.append(line_chart_svg(
            f"{curve['scope']} {curve['resource']} {curve['basis']}: {when}", "forecast", unit, lines,
            [{"label": "allocatable" if not str(curve["scope"]).startswith("namespace:") else "limit",
              "y": float(curve["allocatable"]), "colour": COLORS["allocatable"], "dash": True}],
            band, note=str(curve.get("reason") or "")))
    if not charts:
        return [], "No growing trend to draw (or too little history)."
    return charts, (f"{len(charts)} forecast(s): those that reach their limit within the horizon first (soonest "
                    "first), then the fastest growing. Dots of history are daily values; the dashed line is the "
                    "robust (Theil-Sen) trend; the band is its slope interval.")


# --- the page ------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.meta,p.note{color:#555;font-size:13px;margin:4px 0 10px}
nav a{margin-right:14px;font-size:14px}
svg.chart{background:#fff;border:1px solid #e3e3e3;margin:6px 8px 6px 0}
svg .title{font-size:13px;font-weight:600;fill:#222} svg .tick,svg .legend{font-size:11px;fill:#444}
svg .grid{stroke:#eee;stroke-width:1}
.charts{display:flex;flex-wrap:wrap} .pair{display:flex;flex-wrap:wrap}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px}
th,td{border:1px solid #e3e3e3;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f6f6f6;position:sticky;top:0} td.t{text-align:left}
.wrap{overflow-x:auto;max-width:100%}
"""

# Marks each chart whose data marks take up space once laid out (what the browser test checks).
SCRIPT = """
(function(){
  var charts=document.querySelectorAll('svg.chart'), ok=0;
  charts.forEach(function(svg){
    var g=svg.querySelector('g.marks'); var b=g?g.getBBox():null;
    if(b&&b.width>0&&b.height>0&&g.childElementCount>0){svg.setAttribute('data-rendered','1');ok++;}
  });
  document.body.setAttribute('data-charts',charts.length);
  document.body.setAttribute('data-charts-rendered',ok);
})();
"""


def _table_html(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = []
        for name, value in zip(frame.columns, row):
            text = render._cell(name, value)
            cls = ' class="t"' if isinstance(value, str) or value is None else ""
            cells.append(f"<td{cls}>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _guarded(draw, what: str) -> tuple[list[str], str]:
    """One group of charts; a failing analysis leaves a note instead of taking the page down."""
    try:
        return draw()
    except CapplanError as err:
        return [], _esc(f"No {what} charts: {err}")
    except Exception as exc:  # a bug in one analysis: say so on the page, keep the rest
        return [], _esc(f"No {what} charts: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def render_html(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None,
                sections: list[Section] | None = None) -> str:
    """The whole report as one self-contained HTML page."""
    options = options or ReportOptions()
    sections = sections if sections is not None else build_report(con, options)
    start, end = store.analysis_window(con, options.window)
    nodes = nodes_report(con, options.window, options.nodes or None)
    risk, risk_note = _guarded(lambda: memory_risk_charts(con, nodes, start, end), "memory pressure")
    recs, recs_note = _guarded(lambda: recommendation_charts(con, options, start, end), "recommendation")
    fcs, fcs_note = _guarded(lambda: forecast_charts(con, options), "forecast")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>capplan report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>capplan capacity report</h1>",
        f'<p class="meta">window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC · {nodes.height} nodes · '
        f"generated {generated}</p>",
        '<nav><a href="#nodes">Nodes</a><a href="#pressure">Memory pressure</a>'
        '<a href="#recommendations">Recommendations</a><a href="#forecast">Forecast</a><a href="#tables">Tables</a></nav>',
        '<h2 id="nodes">Nodes: requests, limits and usage against allocatable</h2>',
        '<p class="note">Bars are % of each node\'s allocatable; the dashed line is 100%. Requests past it cannot be '
        "scheduled; limits past it are overcommit; usage past requests is borrowed capacity.</p>",
        (f'<p class="note">The {MAX_NODE_BARS} most loaded of {nodes.height} nodes (highest request or p95 '
         "usage ratio); the tables below list them all.</p>" if nodes.height > MAX_NODE_BARS else ""),
        f'<div class="charts">{node_bars_svg(most_loaded(nodes), "cpu")}{node_bars_svg(most_loaded(nodes), "memory")}</div>',
        '<h2 id="pressure">Memory pressure: working set against the eviction threshold</h2>',
        f'<p class="note">{risk_note} Working set is the sum over the node\'s containers; the kubelet evicts when '
        "memory.available (capacity - working set) drops under 100Mi.</p>",
        f'<div class="charts">{"".join(risk)}</div>',
        '<h2 id="recommendations">Usage against requests for the top recommendations</h2>',
        f'<p class="note">{recs_note}</p>', "".join(recs),
        '<h2 id="forecast">Forecast</h2>', f'<p class="note">{fcs_note}</p>',
        f'<div class="charts">{"".join(fcs)}</div>',
        '<h2 id="tables">Tables</h2>',
    ]
    for section in sections:
        parts.append(f"<h3>{_esc(section.title)}</h3>")
        if section.note:
            parts.append(f'<p class="note">{_esc(section.note)}</p>')
        parts.append(_table_html(section.frame))
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_html(con: duckdb.DuckDBPyConnection, options: ReportOptions, output: str | Path | None,
               sections: list[Section] | None = None) -> None:
    """Write the page to `output` (a path) or stdout."""
    text = render_html(con, options, sections)
    if output and str(output) != "-":
        Path(output).write_text(text)
    else:
        import sys

        sys.stdout.write(text)
