"""`capplan backtest --splits --format html`: one self-contained page (inline SVG, no script from
a CDN) with the summary over all splits, the frontier charts (memory slack against OOM
container-days, CPU slack against CPU shortfall: one dot per policy and split, a larger ring at
each policy's mean) and the per-split table. Presentation only: the numbers come from
capplan.analysis.backtest.
"""

from __future__ import annotations

import html
import math
from typing import Any

import polars as pl

WIDTH, HEIGHT = 660, 400
MARGIN = {"left": 80, "right": 150, "top": 30, "bottom": 46}
# Okabe & Ito's colour-blind-safe set (2008) without its yellow (faint on white), then Tol's muted
PALETTE = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#999999",
           "#882255", "#44AA99", "#117733", "#332288", "#AA4499", "#DDCC77"]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo if hi > lo else 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def frontier_svg(per_split: pl.DataFrame, x: str, y: str, title: str, x_label: str, y_label: str,
                 x_percent: bool = False) -> str:
    """A scatter of every (policy, split) point, x against y, with each policy's mean ringed."""
    data = per_split.select("policy", x, y).drop_nulls()
    policies = list(dict.fromkeys(per_split["policy"].to_list()))
    xs, ys = data[x].to_list(), data[y].to_list()
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    x_lo, y_pad = min(0.0, x_lo), (y_hi - y_lo) * 0.05 or 0.05
    y_lo, y_hi = y_lo - y_pad, y_hi + y_pad
    x_hi = x_hi + (x_hi - x_lo) * 0.05 or 1.0
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def px(v: float) -> float:
        return MARGIN["left"] + (v - x_lo) / (x_hi - x_lo) * plot_w

    def py(v: float) -> float:
        return MARGIN["top"] + (1 - (v - y_lo) / (y_hi - y_lo)) * plot_h

    out = [f'<svg class="chart" data-kind="frontier" role="img" aria-label="{_esc(title)}" width="{WIDTH}" '
           f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="title" x="{MARGIN["left"]}" y="18">{_esc(title)}</text>']
    for t in _ticks(x_lo, x_hi):
        label = f"{t:.1%}" if x_percent else f"{t:g}"
        out.append(f'<line class="grid" x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{MARGIN["top"]}" '
                   f'y2="{HEIGHT - MARGIN["bottom"]}"/><text class="tick" x="{px(t):.1f}" '
                   f'y="{HEIGHT - MARGIN["bottom"] + 14}" text-anchor="middle">{_esc(label)}</text>')
    for t in _ticks(y_lo, y_hi):
        out.append(f'<line class="grid" x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" y1="{py(t):.1f}" '
                   f'y2="{py(t):.1f}"/><text class="tick" x="{MARGIN["left"] - 6}" y="{py(t) + 4:.1f}" '
                   f'text-anchor="end">{t:.3g}</text>')
    out.append(f'<text class="tick" x="{MARGIN["left"] + plot_w / 2:.0f}" y="{HEIGHT - 8}" '
               f'text-anchor="middle">{_esc(x_label)}</text>')
    out.append(f'<text class="tick" transform="translate(16,{MARGIN["top"] + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{_esc(y_label)}</text>')
    for i, policy in enumerate(policies):
        colour = PALETTE[i % len(PALETTE)]
        rows = data.filter(pl.col("policy") == policy)
        for r in rows.iter_rows(named=True):
            out.append(f'<circle class="point" data-policy="{_esc(policy)}" cx="{px(r[x]):.1f}" cy="{py(r[y]):.1f}" '
                       f'r="2.5" fill="{colour}" fill-opacity="0.55"/>')
        if rows.height:
            mx, my = rows.select(pl.col(x).mean()).item(), rows.select(pl.col(y).mean()).item()
            out.append(f'<circle class="mean" data-policy="{_esc(policy)}" cx="{px(mx):.1f}" cy="{py(my):.1f}" r="6" '
                       f'fill="none" stroke="{colour}" stroke-width="2"><title>{_esc(policy)}: mean</title></circle>')
        ly = MARGIN["top"] + 6 + i * 16
        lx = WIDTH - MARGIN["right"] + 12
        out.append(f'<circle cx="{lx}" cy="{ly}" r="5" fill="{colour}"/>'
                   f'<text class="legend" x="{lx + 10}" y="{ly + 4}">{_esc(policy)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = []
        for value in row:
            if isinstance(value, float):
                text = f"{value:.4f}"
            else:
                text = "" if value is None else str(value)
            cells.append(f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            "</div>")


def page(per_split: pl.DataFrame, summary: pl.DataFrame, title: str) -> str:
    """The whole HTML page."""
    charts = [
        frontier_svg(per_split, "oom_container_days", "mem_slack", "Memory: slack against OOM container-days",
                     "OOM container-days (share)", "memory slack", x_percent=True),
        frontier_svg(per_split, "cpu_short", "cpu_slack", "CPU: slack against shortfall",
                     "CPU shortfall (share of usage above the request)", "CPU slack", x_percent=True),
    ]
    style = ("body{font-family:system-ui,sans-serif;margin:16px;color:#222} table{border-collapse:collapse;"
             "font-size:12px;margin:8px 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right} "
             "th{background:#f4f4f4} td:first-child,th:first-child{text-align:left} "
             "svg.chart{background:#fff;border:1px solid #e3e3e3;margin:6px 8px 6px 0} "
             "svg .title{font-size:13px;font-weight:600;fill:#222} svg .tick,svg .legend{font-size:11px;fill:#444} "
             "svg .grid{stroke:#eee;stroke-width:1} div.wide{overflow-x:auto} td{white-space:nowrap}")
    splits = per_split["split"].n_unique()
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_esc(title)}</title>",
        f"<style>{style}</style></head><body>", f"<h1>{_esc(title)}</h1>",
        f"<p>{splits} splits. Every metric is better lower; worst = the highest over the splits. "
        "mem_vs_current = memory limits summed over the test samples / the current specs'. "
        "Dots: one per policy and split; rings: each policy's mean.</p>",
        '<h2>Frontier</h2><div class="charts">', *charts, "</div>",
        "<h2>Summary over the splits</h2>", _table(summary),
        "<h2>Every split</h2>", _table(per_split.drop("origin")),
        "</body></html>",
    ])
