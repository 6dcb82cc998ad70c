"""A small SVG toolkit and the report's chart types, drawn in Python so the page needs no
network: horizontal bars per node, time lines with thresholds and bands, and histograms."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl

from capplan.quantity import format_bytes, format_cpu

MiB = 2**20
MAX_POINTS = 700
MAX_NODE_BARS = 40  # beyond this the node charts show the most loaded nodes

COLORS = {
    "requests": "#4c78a8", "limits": "#f58518", "usage": "#54a24b", "allocatable": "#222222",
    "threshold": "#e45756", "recommended": "#2ca02c", "current": "#555555", "band": "#9ecae9",
    "history": "#4c78a8", "trend": "#e45756",
}


# --- small SVG toolkit ------------------------------------------------------------------------------


def esc(text: Any) -> str:
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


def nice_ticks(lo: float, hi: float, ticks: int = 5) -> list[float]:
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
        f'<svg class="chart" data-kind="{esc(kind)}" role="img" aria-label="{esc(title)}" '
        f'width="{frame.width}" height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<text class="title" x="{frame.left}" y="18">{esc(title)}</text>',
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
        out.append(f'<text class="legend" x="{x + 16:.0f}" y="36">{esc(label)}</text>')
        x += 30 + 6.5 * len(label)
    return out


def _y_axis(frame: Frame, lo: float, hi: float, label_of, scale: float = 1.0) -> list[str]:
    """Grid lines and labels; ticks are nice numbers in units of `scale` (e.g. GiB)."""
    out = []
    for tick in (t * scale for t in nice_ticks(lo / scale, hi / scale)):
        y = frame.top + frame.plot_h * (1 - (tick - lo) / (hi - lo))
        out.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.left + frame.plot_w}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label_of(tick))}</text>')
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
        stamp = datetime.fromtimestamp(t, tz=UTC)
        text = stamp.strftime("%m-%d") if step >= 86400 else stamp.strftime("%H:%M")
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.top + frame.plot_h}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{frame.top + frame.plot_h + 16}" text-anchor="middle">{text}</text>')
        t += step
    return out


def epoch_seconds(ts: datetime) -> float:
    return ts.replace(tzinfo=UTC).timestamp() if ts.tzinfo is None else ts.timestamp()


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
    def x_of(pct: float) -> float:
        return frame.left + frame.plot_w * min(pct, hi) / hi
    for tick in nice_ticks(0, hi):
        x = x_of(tick)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.top + row_h * len(rows)}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{frame.top + row_h * len(rows) + 16}" text-anchor="middle">{tick:.0f}%</text>')
    out.append('<g class="marks">')
    for i, row in enumerate(rows):
        y0 = frame.top + i * row_h + 4
        alloc = row[f"{resource}_allocatable_{unit}"] or 0
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y0 + 16}" text-anchor="end">{esc(row["node"])}</text>')
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
            if unbounded:
                # no limit: a hatched bar to the edge, labelled, so it cannot be read as ~110%
                out.append(f'<rect x="{frame.left}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="#fff" '
                           f'stroke="{colour}" stroke-width="0.8"><title>{esc(tip)}</title></rect>')
                step = 5.0
                x = frame.left + 1.0
                while x < frame.left + width - 1:
                    x2 = min(x + bar_h, frame.left + width - 1)
                    out.append(f'<line x1="{x:.1f}" y1="{y + bar_h}" x2="{x2:.1f}" y2="{y + bar_h - (x2 - x):.1f}" '
                               f'stroke="{colour}" stroke-width="1"/>')
                    x += step
                out.append(f'<text class="tick nolimit" x="{frame.left + width - 4:.1f}" y="{y + bar_h - 0.5}" '
                           f'text-anchor="end" font-weight="600">no limit</text>')
            else:
                out.append(f'<rect x="{frame.left}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="{colour}">'
                           f'<title>{esc(tip)}</title></rect>')
    out.append("</g>")
    x100 = x_of(100)
    out.append(f'<line x1="{x100:.1f}" y1="{frame.top - 4}" x2="{x100:.1f}" y2="{frame.top + row_h * len(rows)}" '
               f'stroke="{COLORS["allocatable"]}" stroke-width="1.5" stroke-dasharray="5,3"/>')
    out.append("</svg>")
    return "\n".join(out)


def downsample_max(ts: np.ndarray, values: np.ndarray, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's maximum so that peaks survive thinning."""
    if len(ts) <= points:
        return ts, values
    edges = np.linspace(0, len(ts), points + 1).astype(int)
    keep_t, keep_v = [], []
    for lo, hi in pairwise(edges):
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
    label_of = (lambda v: f"{v / scale:g}{suffix}") if unit == "bytes" else (lambda v: _fmt(v, unit))
    def x_of(t: float) -> float:
        return frame.left + frame.plot_w * (t - t0) / (t1 - t0)
    def y_of(v: float) -> float:
        return frame.top + frame.plot_h * (1 - (v - y_lo) / (y_hi - y_lo))
    out = _svg_open(frame, title, kind)
    out += _legend(frame, [(ln["label"], ln["colour"], "dash" if ln.get("dash") else "line") for ln in lines]
                   + ([(band["label"], COLORS["band"], "box")] if band else [])
                   + [(h["label"], h["colour"], "dash" if h.get("dash") else "line") for h in hlines]
                   + ([(points["label"], points["colour"], "box")] if points is not None and len(points["t"]) else []))
    out += _y_axis(frame, y_lo, y_hi, label_of, scale)
    if unit in ("cores", "bytes"):  # the unit of the axis, above its labels
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{frame.top - 4}" text-anchor="end">'
                   f'{"cores" if unit == "cores" else "memory"}</text>')
    out += _time_axis(frame, t0, t1)
    out.append('<g class="marks">')
    if band:
        top = [f"{x_of(t):.1f},{y_of(min(v, y_hi)):.1f}" for t, v in zip(band["t"], band["hi"], strict=True)]
        bottom = [f"{x_of(t):.1f},{y_of(max(v, y_lo)):.1f}" for t, v in zip(band["t"][::-1], band["lo"][::-1], strict=True)]
        out.append(f'<polygon points="{" ".join(top + bottom)}" fill="{COLORS["band"]}" fill-opacity="0.5">'
                   f'<title>{esc(band["label"])}</title></polygon>')
    for line in lines:
        t, y = np.asarray(line["t"], dtype=float), np.asarray(line["y"], dtype=float)
        ok = np.isfinite(y)
        coords = " ".join(f"{x_of(a):.1f},{y_of(min(b, y_hi)):.1f}" for a, b in zip(t[ok], y[ok], strict=True))
        dash = ' stroke-dasharray="6,4"' if line.get("dash") else ""
        out.append(f'<polyline points="{coords}" fill="none" stroke="{line["colour"]}" stroke-width="1.5"{dash}>'
                   f'<title>{esc(line["label"])}</title></polyline>')
    if points is not None:
        for a, b in zip(points["t"], points["y"], strict=True):
            stamp = datetime.fromtimestamp(float(a), tz=UTC).strftime("%Y-%m-%d %H:%M")
            out.append(f'<circle cx="{x_of(a):.1f}" cy="{y_of(min(b, y_hi)):.1f}" r="3" fill="{points["colour"]}">'
                       f'<title>{stamp} UTC: {esc(_fmt(b, unit))}</title></circle>')
    out.append("</g>")
    for h in hlines:
        y_px = y_of(h["y"])
        dash = ' stroke-dasharray="5,3"' if h.get("dash") else ""
        out.append(f'<line x1="{frame.left}" y1="{y_px:.1f}" x2="{frame.left + frame.plot_w}" y2="{y_px:.1f}" '
                   f'stroke="{h["colour"]}" stroke-width="1.5"{dash}><title>{esc(h["label"])}: '
                   f'{esc(_fmt(h["y"], unit))}</title></line>')
    if note:
        out.append(f'<text class="legend" x="{frame.left}" y="{frame.height - 6}">{esc(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def histogram_svg(title: str, kind: str, unit: str, values: np.ndarray, markers: list[dict[str, Any]]) -> str:
    """Distribution of usage samples with vertical markers {label, x, colour, dash}."""
    frame = Frame(width=480, height=230, left=45, right=14, top=50, bottom=34)
    values = values[np.isfinite(values)]
    samples = int(values.size)
    marks_x = [m["x"] for m in markers if m["x"] is not None and math.isfinite(m["x"])]
    data_hi = float(np.quantile(values, 0.999)) if values.size else 0.0
    hi = max([data_hi] + marks_x) * 1.1 or 1.0
    if data_hi > 0 and data_hi * 1.1 < hi / 8:
        # a request far above the usage would put every sample into the first of 30 bars: the
        # axis follows the samples, and the markers beyond it point off the chart
        hi = data_hi * 1.15
    counts, edges = np.histogram(np.clip(values, 0, hi), bins=30, range=(0, hi))
    share = counts / max(1, counts.sum()) * 100
    y_hi = max(float(share.max()) * 1.1, 1.0)
    scale, suffix = (_byte_scale(hi) if unit == "bytes" else (1.0, ""))
    x_label = (lambda v: f"{v / scale:g}{suffix}") if unit == "bytes" else (lambda v: _fmt(v, "cores"))
    def x_of(v: float) -> float:
        return frame.left + frame.plot_w * v / hi
    def y_of(v: float) -> float:
        return frame.top + frame.plot_h * (1 - v / y_hi)
    out = _svg_open(frame, title, kind)
    out[0] = out[0].replace('<svg class="chart"', f'<svg class="chart" data-samples="{samples}"', 1)
    legend_y = 36
    x = float(frame.left)
    for m in markers:
        if m["x"] is None:
            continue
        dash = ' stroke-dasharray="4,3"' if m.get("dash") else ""
        out.append(f'<line x1="{x}" y1="{legend_y - 4}" x2="{x + 14}" y2="{legend_y - 4}" stroke="{m["colour"]}" stroke-width="2"{dash}/>')
        out.append(f'<text class="legend" x="{x + 18}" y="{legend_y}">{esc(m["label"])} {esc(_fmt(m["x"], unit))}</text>')
        x += 34 + 6.5 * (len(m["label"]) + 1 + len(_fmt(m["x"], unit)))
    out += _y_axis(frame, 0, y_hi, lambda v: f"{v:.0f}%")
    for tick in (t * scale for t in nice_ticks(0, hi / scale, 4)):
        out.append(f'<text class="tick" x="{x_of(tick):.1f}" y="{frame.top + frame.plot_h + 15}" text-anchor="middle">{esc(x_label(tick))}</text>')
    out.append(f'<text class="tick" x="{frame.left + frame.plot_w}" y="{frame.top + frame.plot_h + 28}" '
               f'text-anchor="end">{"cores" if unit == "cores" else "working set"}</text>')
    out.append('<g class="marks">')
    for count, pct, lo_edge, hi_edge in zip(counts, share, edges[:-1], edges[1:], strict=True):
        if count == 0:
            continue
        x0, x1 = x_of(lo_edge), x_of(hi_edge)
        y = y_of(pct)
        tip = f"{x_label(lo_edge)}..{x_label(hi_edge)}: {pct:.1f}% of samples"
        out.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
                   f'height="{frame.top + frame.plot_h - y:.1f}" fill="{COLORS["usage"]}"><title>{esc(tip)}</title></rect>')
    out.append("</g>")
    off = 0
    for m in markers:
        if m["x"] is None or not math.isfinite(m["x"]):
            continue
        xm = x_of(min(m["x"], hi))
        dash = ' stroke-dasharray="4,3"' if m.get("dash") else ""
        if m["x"] > hi:  # off the chart: an arrow at the right edge, one line per marker
            off += 1
            out.append(f'<text class="tick" x="{xm - 2:.1f}" y="{frame.top + 12 * off}" text-anchor="end" '
                       f'fill="{m["colour"]}">{esc(m["label"])} {esc(_fmt(m["x"], unit))} &#8594;</text>')
        out.append(f'<line x1="{xm:.1f}" y1="{frame.top}" x2="{xm:.1f}" y2="{frame.top + frame.plot_h}" '
                   f'stroke="{m["colour"]}" stroke-width="2"{dash}><title>{esc(m["label"])}: '
                   f'{esc(_fmt(m["x"], unit))}</title></line>')
    out.append("</svg>")
    return "\n".join(out)
