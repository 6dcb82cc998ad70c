"""`capplan report --format html`: one self-contained HTML page with charts.

Everything is inline (CSS, SVG drawn in Python by capplan.render.svg, a few lines of script
that only mark the charts as rendered), so the file opens without a network. The charts show
what people would rather look at than read:

- per node: requests, limits and p95 usage against allocatable, for CPU and memory;
- for the nodes at risk: the summed working set over time against allocatable and the kubelet's
  hard eviction threshold (capacity - 100Mi memory.available);
- for the top recommendations: the distribution of usage samples against the current and the
  recommended request (and limit);
- forecasts: the daily history, the trend projected to allocatable, and the interval.

Below the charts come all report sections as tables (the same frames as `--format json`). The
page draws a capplan.report.charts.ReportPage; it reads nothing itself.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from capplan.quantity import format_bytes
from capplan.render.cells import cell
from capplan.render.svg import (
    COLORS,
    MAX_NODE_BARS,
    downsample_max,
    epoch_seconds,
    esc,
    histogram_svg,
    line_chart_svg,
    most_loaded,
    node_bars_svg,
)
from capplan.report.charts import AT_RISK_SHARE, ChartGroup, ReportPage


def memory_risk_charts(group: ChartGroup) -> tuple[list[str], str]:
    """Line charts of the summed working set of the nodes at risk, and a sentence about them."""
    if group.error:
        return [], esc(f"No memory pressure charts: {group.error}")
    if not group.items:
        return [], "No usage samples in the window."
    if group.total:
        sentence = (f"{group.total} node(s) reach {AT_RISK_SHARE:.0%} or more of "
                    "the kubelet's hard eviction threshold (memory.available &lt; 100Mi).")
    else:
        sentence = f"No node reaches {AT_RISK_SHARE:.0%} of its eviction threshold; the closest one is shown."
    charts = []
    for chart in group.items:
        t = np.array([epoch_seconds(x) for x in chart.ts])
        y = chart.memory_bytes
        threshold = chart.threshold_bytes
        # every moment over the threshold is marked, even where the line is thinned
        over_t, over_y = t[y >= threshold], y[y >= threshold]
        t, y = downsample_max(t, y)
        peak = float(np.max(y))  # thinning keeps each bucket's maximum, so the peak survives
        charts.append(line_chart_svg(
            f"{chart.node}: working set of its containers vs eviction threshold "
            f"(peak {format_bytes(peak)} = {chart.peak_share:.0%} of {format_bytes(threshold)})",
            "memory-risk", "bytes",
            [{"label": "working set", "t": t, "y": y, "colour": COLORS["usage"]}],
            [{"label": "allocatable", "y": chart.allocatable_bytes, "colour": COLORS["allocatable"], "dash": True},
             {"label": "eviction threshold", "y": threshold, "colour": COLORS["threshold"]}],
            points={"label": "at or over the threshold", "t": over_t, "y": over_y,
                    "colour": COLORS["threshold"]},
        ))
    return charts, sentence


def recommendation_charts(group: ChartGroup) -> tuple[list[str], str]:
    """Usage distributions vs current and recommended requests for the top recommendations."""
    if group.error:
        return [], esc(f"No recommendation charts: {group.error}")
    charts = []
    for item in group.items:
        row = item.recommendation
        name = f"{row['namespace']}/{row['owner_name']} {row['container']}"
        cpu = histogram_svg(
            f"{name}: CPU usage", "usage-cpu", "cores", item.cpu_cores,
            [{"label": "request now", "x": row.get("cpu_request_current"), "colour": COLORS["current"], "dash": True},
             {"label": "recommended", "x": row.get("cpu_request_recommended"), "colour": COLORS["recommended"]},
             {"label": "limit now", "x": row.get("cpu_limit_current"), "colour": COLORS["limits"], "dash": True}])
        mem = histogram_svg(
            f"{name}: memory working set", "usage-memory", "bytes", item.memory_bytes,
            [{"label": "request now", "x": row.get("memory_request_current"), "colour": COLORS["current"], "dash": True},
             {"label": "recommended", "x": row.get("memory_request_recommended"), "colour": COLORS["recommended"]},
             {"label": "limit now", "x": row.get("memory_limit_current"), "colour": COLORS["limits"], "dash": True}])
        reason = esc(row.get("reason") or "")
        charts.append(f'<div class="pair"><div>{cpu}</div><div>{mem}</div></div>'
                      f'<p class="note">{esc(row.get("severity") or "")}: {reason}</p>')
    sentence = (f"Top {len(charts)} of {group.total} workload containers by severity and size of the change; "
                "bars: share of usage samples in the window.")
    return charts, sentence


def forecast_charts(group: ChartGroup) -> tuple[list[str], str]:
    """Forecast lines with their interval for the scopes that run out soonest."""
    if group.error:
        return [], esc(f"No forecast charts: {group.error}")
    charts = []
    for curve in group.items:
        unit = "cores" if curve["resource"] == "cpu" else "bytes"
        lines = [{"label": f"daily {curve['basis']}", "t": [epoch_seconds(d) for d in curve["history_t"]],
                  "y": curve["history_y"], "colour": COLORS["history"]},
                 {"label": "trend", "t": [epoch_seconds(d) for d in curve["trend_t"]], "y": curve["trend_y"],
                  "colour": COLORS["trend"], "dash": True}]
        band = {"t": [epoch_seconds(d) for d in curve["band_t"]], "lo": curve["band_lo"], "hi": curve["band_hi"],
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
                    "first), then the fastest growing. The solid line is the daily history; the dashed line is the "
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
ol.act{margin:6px 0 14px;padding-left:26px;font-size:15px;line-height:1.5}
ol.act li.high{color:#b00020} ol.act li.medium{color:#8a5a00} ol.act li.low{color:#1b5e20}
ol.act code,p code{color:#333;background:#f3f3f3;padding:0 4px;border-radius:3px;font-size:13px}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:14px;margin:6px 0 12px}
dl.summary dt{font-weight:600} dl.summary dd{margin:0}
/* a phone: charts keep their size (readable text) and scroll sideways; the list comes first */
@media (max-width:700px){
  body{margin:10px}
  .charts,.pair{flex-wrap:nowrap;overflow-x:auto;-webkit-overflow-scrolling:touch}
  svg.chart{flex:none}
  ol.act{padding-left:20px;font-size:14px}
  dl.summary{grid-template-columns:1fr} dl.summary dd{margin:0 0 6px}
}
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
  // layout facts for the browser test: page width, the smallest chart text, where the list is
  var small=1e9; document.querySelectorAll('svg.chart text').forEach(function(t){
    var h=t.getBoundingClientRect().height; if(h>0&&h<small)small=h;});
  var act=document.getElementById('act'), r=act?act.getBoundingClientRect():null;
  document.body.setAttribute('data-viewport-width',window.innerWidth);
  document.body.setAttribute('data-page-width',document.documentElement.scrollWidth);
  document.body.setAttribute('data-smallest-chart-text-px',Math.round(small*10)/10);
  if(r){document.body.setAttribute('data-act-top',Math.round(r.top));
        document.body.setAttribute('data-act-right',Math.round(r.right));}
})();
"""


def _table_html(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = []
        for name, value in zip(frame.columns, row, strict=True):
            text = cell(name, value)
            cls = ' class="t"' if isinstance(value, str) or value is None else ""
            cells.append(f"<td{cls}>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _opening(sections: list) -> list[str]:
    """The act-first list (each finding links to the section with its detail) and the summary."""
    out = ['<h2 id="act">Act on these</h2>']
    by_key = {s.key: s for s in sections}
    actions = by_key.get("actions")
    if actions is None or actions.frame.is_empty():
        out.append(f'<p class="note">{esc(actions.note if actions else "")}</p>')
    else:
        out.append('<ol class="act">')
        for r in actions.frame.iter_rows(named=True):
            out.append(f'<li class="{esc(r["severity"])}"><a href="#section-{esc(r["section"])}">{esc(r["finding"])}</a>'
                       f' <code>{esc(r["command"])}</code></li>')
        out.append("</ol>")
    summary = by_key.get("summary")
    if summary is not None and not summary.frame.is_empty():
        out.append('<dl class="summary">' + "".join(f"<dt>{esc(r['item'])}</dt><dd>{esc(r['value'])}</dd>"
                                                    for r in summary.frame.iter_rows(named=True)) + "</dl>")
    return out


def render_html(page: ReportPage) -> str:
    """The whole report as one self-contained HTML page."""
    start, end, nodes, sections = page.start, page.end, page.nodes, page.sections
    risk, risk_note = memory_risk_charts(page.memory_risk)
    recs, recs_note = recommendation_charts(page.usage)
    fcs, fcs_note = forecast_charts(page.forecasts)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>capplan report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>capplan capacity report</h1>",
        f'<p class="meta">window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC · {nodes.height} nodes · '
        f"generated {generated}</p>",
        '<nav><a href="#act">Act on these</a><a href="#nodes">Nodes</a><a href="#pressure">Memory pressure</a>'
        '<a href="#recommendations">Recommendations</a><a href="#forecast">Forecast</a><a href="#tables">Tables</a></nav>',
        *_opening(sections),
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
        if section.key in ("actions", "summary"):
            continue  # at the top of the page
        parts.append(f'<h3 id="section-{esc(section.key)}">{esc(section.title)}</h3>')
        if section.note:
            parts.extend(f'<p class="note">{esc(line)}</p>' for line in section.note.splitlines() if line.strip())
        parts.append(_table_html(section.frame))
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_html(page: ReportPage, output: str | Path | None) -> None:
    """Write the page to `output` (a path) or stdout."""
    text = render_html(page)
    if output and str(output) != "-":
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)
