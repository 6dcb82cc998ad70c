"""Declared state read as raw samples (short runs on a kube-state-metrics scrape at most once per
spec step) gives what the spec-step query `max by (...) (last_over_time(m[step - 1ms]))` gives:
checked against the real Prometheus answering both, against a brute-force reading of Prometheus'
rules on hand-made edge cases, and as whole stored tables of an hourly run."""

from __future__ import annotations

import math
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from capplan import store
from capplan.collect import run as collect_run
from capplan.collect import transform as tf
from capplan.collect.matrix import Matrix
from capplan.collect.queries import METRICS, epoch, render, render_coarse, render_raw, render_raw_group
from tests.collect.conftest import WINDOW_START
from tests.collect.test_collect import run, table

LO = WINDOW_START + timedelta(hours=20)
HI = LO + timedelta(hours=3)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


@pytest.mark.parametrize("step", [300, 600, 900])
def test_every_declared_metric_read_raw_equals_the_spec_step_query(prom, step: int) -> None:
    """For every declared metric, Prometheus' own answer to the spec-step query over LO..HI and
    the same computed from its raw samples in (LO - step, HI] are equal row for row (at 600 s and
    900 s a step holds two or three samples of the 5-minute data: the last one counts)."""
    checked = 0
    for metric in METRICS:
        if metric.kind == "usage":
            continue
        aliases = dict(metric.aliases) or None
        stepped = prom.query_range(render(metric, None, step * 1000 - 1), LO, HI, step)
        raw_ms = int((HI - LO).total_seconds() + step) * 1000 - 1
        raw = prom.query(render_raw(metric, None, raw_ms), HI)
        if metric.by:
            want = tf.to_frame(stepped, list(metric.by), aliases)
            got = tf.stepped_from_raw(raw, list(metric.by), aliases, int(epoch(LO)), int(epoch(HI)), step,
                                      equals_one=metric.post == " == 1")
            assert got.schema == want.schema, metric.key
            assert _sorted(got).equals(_sorted(want)), metric.key
            checked += want.height
        else:
            got_series = tf.stepped_series_from_raw(raw, int(epoch(LO)), int(epoch(HI)), step)
            want_series = [{"metric": r["metric"], "values": [[int(t), v] for t, v in r["values"]]} for r in stepped]
            assert got_series == want_series, metric.key
            checked += sum(len(r["values"]) for r in want_series)
    assert checked > 1000  # the window holds the cluster's declared state, not nothing


def _brute(results: list[dict], by: list[str], first: int, last: int, step: int, equals_one: bool) -> set:
    """Prometheus' rules written out: at each grid time T, each series' last sample with
    T - step < t <= T (t in whole ms); `max` over the series of a group where a NaN loses to any
    number; NaN and +-Inf results dropped (as to_frame drops them), then ` == 1`."""
    out = set()
    for T in range(first, last + 1, step):
        groups: dict[tuple, list[float]] = {}
        for r in results:
            inside = [(round(t * 1000), float(v.lstrip("+"))) for t, v in r["values"]
                      if T * 1000 - step * 1000 < round(t * 1000) <= T * 1000]
            if inside:
                groups.setdefault(tuple(r["metric"].get(label, "") for label in by), []).append(inside[-1][1])
        for key, values in groups.items():
            numbers = [v for v in values if not math.isnan(v)]
            if not numbers:
                continue
            value = max(numbers)
            if math.isinf(value) or (equals_one and value != 1.0):
                continue
            out.add((*key, datetime.utcfromtimestamp(T), value))
    return out


def test_edge_cases_follow_prometheus_rules() -> None:
    """Samples on a grid time and one millisecond after the previous one belong to that step, one
    exactly a step earlier does not; a NaN last sample hides an earlier number of its series but
    loses to another series of the group; +Inf wins and is dropped; ` == 1` keeps ones only."""
    T = 1_800_000_000  # a multiple of 300
    results = [
        {"metric": {"__name__": "m", "pod": "a", "resource": "cpu"},
         "values": [[T - 300, "5"], [T - 299.999, "2"], [T, "3"], [T + 150, "1"], [T + 300, "NaN"]]},
        {"metric": {"__name__": "m", "pod": "a", "resource": "cpu", "uid": "x"},
         "values": [[T + 300, "4"], [T + 600, "+Inf"], [T + 900, "-Inf"]]},
        {"metric": {"__name__": "m", "pod": "b", "resource": "cpu"},
         "values": [[T + 1.5, "1"], [T + 299, "0"], [T + 600, "1"], [T + 900, "NaN"]]},
        {"metric": {"__name__": "m", "pod": "c"}, "values": [[T + 600.001, "1"]]},
    ]
    by = ["pod", "resource"]
    for equals_one in (False, True):
        got = tf.stepped_from_raw(results, by, None, T, T + 900, 300, equals_one=equals_one)
        want = _brute(results, by, T, T + 900, 300, equals_one)
        assert set(got.iter_rows()) == want
        assert got.height == len(want)
    got = tf.stepped_from_raw(results, by, None, T, T + 900, 300)
    rows = {(pod, ts, value) for pod, _r, ts, value in got.iter_rows()}
    # T: pod a's last sample in (T-300, T] is 3 (5 is a step earlier); T+300: a's NaN loses to its
    # twin series' 4; T+600: +Inf is dropped; T+900: -Inf alone is a number
    assert (("a", datetime.utcfromtimestamp(T), 3.0) in rows and ("a", datetime.utcfromtimestamp(T + 300), 4.0) in rows
            and not any(p == "a" and ts == datetime.utcfromtimestamp(T + 600) for p, ts, _ in rows)
            and ("a", datetime.utcfromtimestamp(T + 900), -math.inf) not in rows)
    series = tf.stepped_series_from_raw(results[2:], T, T + 900, 300)
    assert series == [{"metric": {"__name__": "m", "pod": "b", "resource": "cpu"}, "values": [[T + 300, "0"], [T + 600, "1"], [T + 900, "NaN"]]},
                      {"metric": {"__name__": "m", "pod": "c"}, "values": [[T + 900, "1"]]}]


SPEC = ["nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "restarts"]


def _reads_raw(promql: str, name: str) -> bool:
    """Whether `promql` is a raw read (`selector[range]`) of metric `name`, alone or in a group
    (`{__name__=~"a|b",...}[range]`)."""
    group = re.match(r'^\{__name__=~"([^"]*)"', promql)
    return promql.endswith("ms]") and (promql.startswith(name + "{") or (group is not None and name in group[1].split("|")))


def test_an_hourly_run_reading_raw_stores_what_the_spec_step_queries_store(prom, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """The first run measures kube-state-metrics' scrape interval (300 s here) and keeps it; the
    hours after it then read declared state raw, and every stored table is the one the spec-step
    queries give."""
    first_end = WINDOW_START + timedelta(hours=14)
    base = tmp_path / "base.duckdb"
    run(prom.url, base, start=WINDOW_START, end=first_end)
    con = store.open_db(base, read_only=True)
    try:
        assert con.execute("SELECT scrape_seconds FROM collector_sources WHERE exporter = 'kube-state-metrics'"
                           ).fetchall() == [(300.0,)]
    finally:
        con.close()
    raw_db, stepped_db = tmp_path / "raw.duckdb", tmp_path / "stepped.duckdb"
    shutil.copy(base, raw_db)
    shutil.copy(base, stepped_db)
    asked: list[str] = []
    real_query = collect_run.PromClient.query_body  # every instant query (raw reads) goes through it

    def counting(self, promql, at):
        asked.append(promql)
        return real_query(self, promql, at)

    monkeypatch.setattr(collect_run.PromClient, "query_body", counting)
    for hour in (1, 2, 3):
        run(prom.url, raw_db, end=first_end + timedelta(hours=hour))
    assert any(_reads_raw(q, "kube_pod_info") for q in asked)  # declared state was read raw
    monkeypatch.setattr(collect_run, "RAW_DECLARED_MIN_STEP_FRACTION", math.inf)
    asked.clear()
    for hour in (1, 2, 3):
        run(prom.url, stepped_db, end=first_end + timedelta(hours=hour))
    assert not any(_reads_raw(q, "kube_pod_info") for q in asked)
    for name in SPEC:
        got, want = table(raw_db, name), table(stepped_db, name)
        assert want.height > 0 or name in ("restarts",), name
        assert _sorted(got).equals(_sorted(want)), name


def test_a_long_run_reads_changed_windows_raw_and_stores_what_the_spec_step_queries_store(prom, tmp_path: Path,
                                                                                          monkeypatch) -> None:
    """A run of 36 hours reads declared state per coarse window and reads the objects of the
    windows where something changed again: raw (kube-state-metrics is scraped every 5 minutes, the
    spec step) or with the spec-step query (kube-state-metrics scraped more often, forced here).
    Both store the same tables, and each run asked for those objects by name the way it should."""
    asked: list[tuple[str, str]] = []
    real_query, real_range = collect_run.PromClient.query_body, collect_run.PromClient.query_range_body

    def counting(self, promql, at):
        asked.append(("instant", promql))
        return real_query(self, promql, at)

    def counting_range(self, promql, start, end, step):
        asked.append(("range", promql))
        return real_range(self, promql, start, end, step)

    monkeypatch.setattr(collect_run.PromClient, "query_body", counting)
    monkeypatch.setattr(collect_run.PromClient, "query_range_body", counting_range)
    end = WINDOW_START + timedelta(hours=35)
    raw_db, stepped_db = tmp_path / "raw.duckdb", tmp_path / "stepped.duckdb"

    def rereads(kind: str) -> list[str]:
        # a re-read names its objects (pod="..." or pod=~"..."); the coarse reads name none
        return [q for k, q in asked if k == kind and "kube_pod_info{pod=" in q]

    run(prom.url, raw_db, start=WINDOW_START, end=end)
    raw_rereads, stepped_in_raw_run = rereads("instant"), rereads("range")
    asked.clear()
    monkeypatch.setattr(collect_run, "RAW_DECLARED_MIN_STEP_FRACTION", math.inf)
    run(prom.url, stepped_db, start=WINDOW_START, end=end)
    assert raw_rereads and all("pod=" in q and q.endswith("ms]") for q in raw_rereads)
    assert stepped_in_raw_run == []
    assert rereads("instant") == [] and rereads("range")
    for name in SPEC:
        got, want = table(raw_db, name), table(stepped_db, name)
        assert want.height > 0, name
        assert _sorted(got).equals(_sorted(want)), name


@pytest.mark.parametrize("window", [6 * 3600, 3600])
def test_coarse_reads_folded_by_capplan_equal_the_servers_max_by(prom, window: int) -> None:
    """For every declared metric read per coarse window, the per-series answer folded by capplan
    (coarse_values) equals Prometheus' own `max by (...) (last_over_time(m[window])) [== 1]` over
    the whole fixture, window by window."""
    lo, hi = WINDOW_START + timedelta(seconds=window), WINDOW_START + timedelta(hours=36)
    checked = 0
    for metric in METRICS:
        if metric.kind == "usage" or not metric.by:
            continue
        aliases = dict(metric.aliases) or None
        want = tf.to_frame(prom.query_range(render(metric, None, window * 1000 - 1), lo, hi, window),
                           list(metric.by), aliases)
        want = want.select(*want.columns[:-2], T=pl.col("ts").dt.epoch("s"), val=pl.col("value"))
        got = tf.coarse_values(prom.query_range(render_coarse(metric, None, window * 1000 - 1), lo, hi, window),
                               list(metric.by), aliases, equals_one=metric.post == " == 1")
        assert got.schema == want.schema, metric.key
        assert _sorted(got).equals(_sorted(want)), metric.key
        checked += want.height
    assert checked > 1000


def test_coarse_folding_follows_prometheus_max_rules() -> None:
    """Per group and window: a NaN loses to any number and a group of NaN only is dropped; +Inf
    wins and is dropped (not replaced by the next largest); -Inf alone is dropped; ` == 1` is
    applied to the group's maximum (a group holding 2 and 1 is dropped; 0.5 and 1 is kept)."""
    T = 1_800_000_000
    results = [
        {"metric": {"pod": "a", "phase": "x", "uid": "1"}, "values": [[T, "NaN"], [T + 3600, "1"], [T + 7200, "NaN"]]},
        {"metric": {"pod": "a", "phase": "x", "uid": "2"}, "values": [[T, "1"], [T + 3600, "+Inf"], [T + 7200, "NaN"]]},
        {"metric": {"pod": "b", "phase": "x", "uid": "3"}, "values": [[T, "2"], [T + 3600, "0.5"], [T + 7200, "-Inf"]]},
        {"metric": {"pod": "b", "phase": "x", "uid": "4"}, "values": [[T, "1"], [T + 3600, "1"]]},
    ]
    by = ["pod", "phase"]

    def brute(equals_one: bool) -> set:
        out = set()
        for t in (T, T + 3600, T + 7200):
            groups: dict[tuple, list[float]] = {}
            for r in results:
                for at, v in r["values"]:
                    if at == t:
                        groups.setdefault(tuple(r["metric"][k] for k in by), []).append(float(v.lstrip("+")))
            for key, values in groups.items():
                numbers = [v for v in values if not math.isnan(v)]
                if numbers and not math.isinf(max(numbers)) and (not equals_one or max(numbers) == 1.0):
                    out.add((*key, t, max(numbers)))
        return out

    for equals_one in (False, True):
        got = tf.coarse_values(results, by, None, equals_one=equals_one)
        assert set(got.iter_rows()) == brute(equals_one) and got.height == len(brute(equals_one))
    assert set(tf.coarse_values(results, by, None).iter_rows()) == {
        ("a", "x", T, 1.0), ("b", "x", T, 2.0), ("b", "x", T + 3600, 1.0)}
    assert set(tf.coarse_values(results, by, None, equals_one=True).iter_rows()) == {
        ("a", "x", T, 1.0), ("b", "x", T + 3600, 1.0)}
    # render_coarse asks the server for ` >= 1` per series rather than the group's ` == 1`: folding
    # what that filter leaves gives the same groups
    at_least_one = [{"metric": r["metric"], "values": [[t, v] for t, v in r["values"] if float(v.lstrip("+")) >= 1]}
                    for r in results]
    got = tf.coarse_values(at_least_one, by, None, equals_one=True)
    assert set(got.iter_rows()) == brute(True) and got.height == len(brute(True))


def _hourly_state() -> collect_run.RunState:
    """What a short run knows on this data: kube-state-metrics scraped every 5 minutes, no coarse windows."""
    return collect_run.RunState(ksm_scrape_seconds=300.0)


def test_grouped_raw_reads_split_into_each_metrics_own_answer(prom) -> None:
    """A short run asks the declared metrics that share their matchers in one raw read
    (`{__name__=~"a|b"}[range]`); split by metric name, the real Prometheus' answer is each
    metric's own raw answer, series for series and sample for sample."""
    jobs = [(m.key, "fine" if m.labels is None else "coarse", None, LO, HI) for m in METRICS if m.kind != "usage"]
    singles, groups = collect_run._grouped(jobs, _hourly_state(), 300)
    assert sorted(len(g) for g in groups)[-1] >= 10 and len(groups) + len(singles) < len(jobs) / 2
    assert sorted([job[0] for group in groups for job in group] + [job[0] for job in singles]) == sorted(j[0] for j in jobs)
    raw_ms = int((HI - LO).total_seconds() + 300) * 1000 - 1
    compared = 0
    for group in groups:
        metrics = [collect_run.METRICS_BY_KEY[job[0]] for job in group]
        assert len({m.match for m in metrics}) == 1  # one selector serves them all
        promql = render_raw_group([m.key for m in metrics], metrics[0].match, None, raw_ms)
        parts = Matrix.from_results(prom.query(promql, HI)).by_name()
        assert parts is not None
        for metric in metrics:
            alone = Matrix.from_results(prom.query(render_raw(metric, None, raw_ms), HI))
            got = parts.get(metric.key, Matrix.empty())
            assert got.metrics == alone.metrics and got.counts == alone.counts, metric.key
            assert got.times.to_list() == alone.times.to_list() and got.values.to_list() == alone.values.to_list()
            compared += alone.points
    assert compared > 1000


def test_an_hourly_run_groups_its_declared_reads_and_stores_what_reads_one_by_one_store(prom, tmp_path: Path,
                                                                                       monkeypatch) -> None:
    """Hourly runs asking declared state in grouped raw reads store every table exactly as the
    same runs asking one metric per query do, with fewer queries."""
    first_end = WINDOW_START + timedelta(hours=14)
    base = tmp_path / "base.duckdb"
    run(prom.url, base, start=WINDOW_START, end=first_end)
    grouped_db, single_db = tmp_path / "grouped.duckdb", tmp_path / "single.duckdb"
    shutil.copy(base, grouped_db)
    shutil.copy(base, single_db)
    asked: list[str] = []
    real_query = collect_run.PromClient.query_body

    def counting(self, promql, at):
        asked.append(promql)
        return real_query(self, promql, at)

    monkeypatch.setattr(collect_run.PromClient, "query_body", counting)
    grouped_queries = sum(run(prom.url, grouped_db, end=first_end + timedelta(hours=h)).queries for h in (1, 2, 3))
    assert any(q.startswith('{__name__=~"') for q in asked)
    monkeypatch.setattr(collect_run, "_grouped", lambda jobs, state, spec_step: (jobs, []))
    asked.clear()
    single_queries = sum(run(prom.url, single_db, end=first_end + timedelta(hours=h)).queries for h in (1, 2, 3))
    assert not any(q.startswith('{__name__=~"') for q in asked)
    assert grouped_queries < single_queries
    for name in [*SPEC, "usage_raw", "series", "series_nodes", "node_usage", "namespace_usage", "scope_usage_daily"]:
        got, want = table(grouped_db, name), table(single_db, name)
        assert want.height > 0 or name in ("restarts",), name
        assert _sorted(got).equals(_sorted(want)), name
