"""`capplan report --format html`: a self-contained page whose charts render in a real headless
Debian chromium with no console errors; the charts show what the data says (checked against
values computed here from the bundled sample's own files)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from capplan import store
from capplan.analysis.nodes import nodes_report
from capplan.cli import app
from capplan.quantity import format_bytes
from capplan.render.svg import downsample_max as _downsample_max
from capplan.render.svg import histogram_svg, node_bars_svg
from capplan.render.svg import nice_ticks as _ticks
from tests import tools

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"
CHROMIUM = tools.path("chromium") or "chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
    # Any attempt to reach the network fails (and would show as a console error).
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0",
]
MiB = 2**20


def run_chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium on the page with a fresh profile; stdout is whatever `extra` asks for."""
    with tempfile.TemporaryDirectory(prefix="capplan-chromium-") as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def report_page(sample_db_readonly: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`capplan report --format html -o report.html` on the bundled sample."""
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("html") / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(sample_db_readonly), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def browser_dom(report_page: Path) -> tuple[str, str]:
    """The DOM after load (`--dump-dom`) and chromium's log."""
    tools.require("chromium")
    proc = run_chromium(report_page, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_page_is_self_contained(report_page: Path) -> None:
    text = report_page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # no external resource of any kind: scripts, styles, images, fonts, frames
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", text), "a src/href that is not an in-page anchor"
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


def test_charts_render_in_chromium_without_console_errors(browser_dom: tuple[str, str]) -> None:
    dom, log = browser_dom
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert console == [], console
    charts = int(re.search(r'data-charts="(\d+)"', dom).group(1))
    rendered = int(re.search(r'data-charts-rendered="(\d+)"', dom).group(1))
    # 2 node charts + at least one memory-pressure chart + 2 per recommendation shown
    assert charts >= 3
    assert rendered == charts
    assert dom.count('data-rendered="1"') == charts
    kinds = re.findall(r'<svg class="chart" data-kind="([a-z-]+)"', dom)
    assert {"node-cpu", "node-memory", "memory-risk"} <= set(kinds)


def test_screenshot_is_not_blank(report_page: Path, tmp_path: Path) -> None:
    tools.require("chromium")
    shot = tmp_path / "page.png"
    proc = run_chromium(report_page, "--hide-scrollbars", "--window-size=1100,1400", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank white PNG of that size is ~5 KB


def _sample_node_peaks() -> dict[str, float]:
    """Per node: the peak over time of the summed container working set, straight from the
    sample's usage.parquet (no capplan code involved)."""
    usage = pl.read_parquet(SAMPLE_DIR / "usage.parquet")
    per_ts = usage.group_by("node", "ts").agg(pl.col("memory_bytes").sum())
    return {r["node"]: float(r["memory_bytes"]) for r in per_ts.group_by("node").agg(pl.col("memory_bytes").max()).to_dicts()}


def test_memory_pressure_charts_are_the_nodes_near_eviction(report_page: Path) -> None:
    nodes = pl.read_parquet(SAMPLE_DIR / "nodes.parquet").group_by("node").agg(pl.col("memory_capacity_bytes").last())
    capacity = {r["node"]: r["memory_capacity_bytes"] for r in nodes.to_dicts()}
    peaks = _sample_node_peaks()
    # at risk: peak >= 90% of (capacity - 100Mi), the kubelet's hard eviction point
    expected = sorted(n for n, peak in peaks.items() if peak >= 0.9 * (capacity[n] - 100 * MiB))
    assert "node-8" in expected  # the sample's memory-pressure node (data/samples/README.md)
    shown = sorted(re.findall(r'aria-label="(node-\d+): working set of its containers', report_page.read_text()))
    assert shown == expected[:4]
    ratio = peaks["node-8"] / (capacity["node-8"] - 100 * MiB)
    text = report_page.read_text()
    assert f"= {ratio:.0%} of {format_bytes(capacity['node-8'] - 100 * MiB)})" in text
    # the moments at or over the threshold are marked, one circle each
    usage = pl.read_parquet(SAMPLE_DIR / "usage.parquet").filter(pl.col("node") == "node-8")
    per_ts = usage.group_by("ts").agg(pl.col("memory_bytes").sum())
    over = per_ts.filter(pl.col("memory_bytes") >= capacity["node-8"] - 100 * MiB).height
    chart = text[text.index('aria-label="node-8: working set'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count("<circle") == over


def test_node_bars_carry_the_node_table(sample_db_readonly: Path) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = nodes_report(con, timedelta(days=14))
    finally:
        con.close()
    svg = node_bars_svg(table, "cpu")
    for row in table.to_dicts():
        pct = row["cpu_requests_cores"] / row["cpu_allocatable_cores"] * 100
        assert f"{row['node']} requests: " in svg
        assert f"= {pct:.0f}% of" in svg
    # an unbounded limit sum is drawn and says so
    if any(np.isinf(v) for v in table["cpu_limits_cores"].to_list()):
        assert "unbounded (a container has no limit)" in svg


def test_histogram_shares_by_hand() -> None:
    # 10 samples: 6 at 0.1 core, 4 at 0.9 core; 30 bins over 0..1.1 (the 1.0 request x 1.1)
    values = np.array([0.1] * 6 + [0.9] * 4)
    svg = histogram_svg("t", "usage-cpu", "cores", values,
                        [{"label": "request now", "x": 1.0, "colour": "#000"}])
    shares = [float(m) for m in re.findall(r": ([0-9.]+)% of samples", svg)]
    assert shares == [60.0, 40.0]
    assert "request now 1" in svg


def test_ticks_and_downsampling() -> None:
    # span/5 = 22 -> the next 1/2/5 x 10^k step is 50
    assert _ticks(0, 110) == [0, 50, 100]
    # span/5 = 0.74 -> 1
    assert _ticks(0, 3.7) == [0, 1, 2, 3]
    # span/5 = 3 -> 5, starting at the first multiple above 12
    assert _ticks(12, 27) == [15, 20, 25]
    t = np.arange(10_000, dtype=float)
    y = np.sin(t / 50)
    y[7_777] = 5.0  # one spike must survive thinning
    kt, ky = _downsample_max(t, y, 500)
    assert len(kt) == 500 and ky.max() == 5.0 and 7_777 in kt


def test_every_chart_group_drew(report_page: Path) -> None:
    """No analysis failed while drawing (a failure leaves a 'No ... charts' note instead)."""
    text = report_page.read_text()
    assert "internal error" not in text
    assert "No memory pressure charts" not in text and "No recommendation charts" not in text
    assert "No forecast charts" not in text


def test_forecast_charts_match_the_forecast_table(report_page: Path, sample_db_readonly: Path) -> None:
    from capplan.analysis.forecast import forecast_report

    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        table = forecast_report(con, timedelta(days=14))
    finally:
        con.close()
    titles = re.findall(r'data-kind="forecast" role="img" aria-label="([^"]+)"', report_page.read_text())
    assert titles, "the sample's ml namespace grows toward its quota: there must be a forecast chart"
    rows = {(r["scope"], r["resource"], r["basis"]): r for r in table.to_dicts()}
    for title in titles:
        match = re.fullmatch(r"(\S+) (cpu|memory) (requests|usage): (.*)", title)
        assert match, title
        row = rows[(match.group(1), match.group(2), match.group(3))]
        days = row["days_to_exhaustion"]
        if days == 0:
            assert match.group(4) == "already at or above its limit"
        elif days is not None:
            assert match.group(4).startswith(f"reaches the limit in {days:.0f} days")
        else:
            assert match.group(4) == "not within the horizon" and row["slope_per_day"] > 0
    # the soonest exhaustion is drawn first
    first = re.fullmatch(r"(\S+) (cpu|memory) (requests|usage): .*", titles[0]).groups()
    soonest = table.filter(pl.col("days_to_exhaustion").is_not_null()).sort("days_to_exhaustion").row(0, named=True)
    assert rows[first]["days_to_exhaustion"] == soonest["days_to_exhaustion"]


def test_usage_histograms_pool_the_workload_s_pods(report_page: Path) -> None:
    """Each histogram holds every usage sample of that container across the workload's pods,
    counted here from the sample's files (pod -> ReplicaSet -> Deployment, or the direct owner)."""
    text = report_page.read_text()
    charts = re.findall(r'<svg class="chart" data-samples="(\d+)" data-kind="usage-cpu" role="img" '
                        r'aria-label="([^/"]+)/(\S+) (\S+): CPU usage"', text)
    assert charts, "the sample has recommendations: their usage must be drawn"
    pods = pl.read_parquet(SAMPLE_DIR / "pods.parquet").group_by("namespace", "pod").agg(
        pl.col("owner_kind").last(), pl.col("owner_name").last())
    owners = pl.read_parquet(SAMPLE_DIR / "owners.parquet").group_by("namespace", "kind", "name").agg(
        pl.col("owner_name").last().alias("top"))
    roll = pods.join(owners, left_on=["namespace", "owner_kind", "owner_name"], right_on=["namespace", "kind", "name"],
                     how="left").with_columns(pl.coalesce("top", "owner_name", "pod").alias("workload"))
    usage = pl.read_parquet(SAMPLE_DIR / "usage.parquet")
    usage = usage.filter(pl.col("ts") >= usage["ts"].max() - timedelta(days=14))  # the report's window
    usage = usage.join(roll.select("namespace", "pod", "workload"), on=["namespace", "pod"], how="left")
    for samples, namespace, workload, container in charts:
        expected = usage.filter((pl.col("namespace") == namespace) & (pl.col("workload") == workload)
                                & (pl.col("container") == container)).height
        assert int(samples) == expected > 0, (namespace, workload, container)


def test_large_clusters_draw_the_most_loaded_nodes() -> None:
    from capplan.render.svg import most_loaded

    # 50 nodes; node i requests i% of its cpu, memory and usage low: the top 40 are nodes 10..49
    frame = pl.DataFrame({
        "node": [f"n{i:02d}" for i in range(50)],
        "cpu_request_ratio": [i / 100 for i in range(50)],
        "memory_request_ratio": [0.01] * 50,
        "cpu_usage_p95_ratio": [None] * 50,
        "memory_usage_p95_ratio": [0.0] * 50,
    }, schema_overrides={"cpu_usage_p95_ratio": pl.Float64})
    assert sorted(most_loaded(frame, 40)["node"].to_list()) == [f"n{i:02d}" for i in range(10, 50)]
    assert most_loaded(frame.head(8), 40).height == 8


def test_readable_on_a_400px_phone(report_page: Path, tmp_path: Path) -> None:
    """At 400 CSS pixels (the report in a 400-px frame: headless chromium's own windows are at
    least 500 wide): the page does not overflow sideways (charts scroll inside their row), chart
    text stays at least 9 px tall (not shrunk to fit), and the act-first list is on the first
    screen, within the width."""
    tools.require("chromium")
    frame = tmp_path / "phone.html"
    frame.write_text(
        '<!DOCTYPE html><html><body style="margin:0"><iframe id="f" src="' + report_page.as_uri()
        + '" style="width:400px;height:900px;border:0"></iframe><script>'
        "document.getElementById('f').addEventListener('load',function(){var b=this.contentDocument.body;"
        "for(var i=0;i<b.attributes.length;i++){document.body.setAttribute(b.attributes[i].name,b.attributes[i].value);}"
        "});</script></body></html>")
    proc = run_chromium(frame, "--allow-file-access-from-files", "--window-size=800,1000",
                        "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout).group(0)
    facts = {k: float(v) for k, v in re.findall(r'data-([a-z-]+)="([0-9.]+)"', body)}
    assert facts["viewport-width"] == 400, body
    assert facts["page-width"] <= 400, body
    assert facts["smallest-chart-text-px"] >= 9, body
    assert facts["act-top"] < 900 and facts["act-right"] <= 400, body
    assert facts["charts-rendered"] == facts["charts"] > 0, body


def test_act_first_list_links_to_its_sections(report_page: Path) -> None:
    text = report_page.read_text()
    items = re.findall(r'<li class="(high|medium|low)"><a href="#(section-[a-z_0-9]+)">', text)
    assert 5 <= len(items) <= 10
    assert text.index('id="act"') < text.index('id="nodes"')  # the list comes before the charts
    for _, anchor in items:
        assert f'id="{anchor}"' in text, anchor


def test_unbounded_limits_are_drawn_as_no_limit(report_page: Path) -> None:
    """The sample has containers without a memory limit: their nodes' limit bars say so."""
    text = report_page.read_text()
    assert text.count(">no limit</text>") >= 1
    assert "∞" not in text
