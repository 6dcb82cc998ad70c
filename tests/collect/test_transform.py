"""Pure pieces of the collector on tiny hand-made inputs: interval compression, restarts,
PromQL escaping, chunk and batch planning."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import polars as pl
import pytest

from capplan.collect import transform as tf
from capplan.collect.queries import (
    MAX_POINTS_PER_SERIES,
    METRICS_BY_KEY,
    batch_namespaces,
    from_epoch,
    plan_chunks,
    render,
    split_range,
)
from capplan.promql import escape_label_value, label_matcher

T0 = 1_790_000_100  # a multiple of 300


def answer(labels: dict[str, str], points: list[tuple[int, str]]) -> dict:
    return {"metric": labels, "values": [[t, v] for t, v in points]}


def test_observations_become_intervals_broken_by_changes_and_gaps() -> None:
    # requests 0.5 at t0..t0+600, 1.0 at t0+900 (an edit), gone at t0+1200, back (0.5) at t0+1800
    results = [answer({"namespace": "a", "pod": "p", "container": "c", "resource": "cpu"},
                      [(T0, "0.5"), (T0 + 300, "0.5"), (T0 + 600, "0.5"), (T0 + 900, "1"), (T0 + 1800, "0.5")])]
    long = tf.to_frame(results, ["namespace", "pod", "container", "resource"])
    empty = tf.to_frame([], ["namespace", "pod", "container", "resource"])
    frame = tf.containers_frame(long, empty, empty, empty, tf.to_frame([], ["namespace", "pod", "container"]),
                                tf.to_frame([], ["namespace", "pod", "container", "restart_policy"]), 300)
    rows = frame.sort("valid_from").select("valid_from", "valid_to", "cpu_request_cores", "memory_request_bytes").rows()
    assert rows == [
        (from_epoch(T0), from_epoch(T0 + 600), 0.5, None),
        (from_epoch(T0 + 900), from_epoch(T0 + 900), 1.0, None),
        (from_epoch(T0 + 1800), from_epoch(T0 + 1800), 0.5, None),
    ]
    assert not frame["init_container"].any()


def test_restarts_are_rises_of_the_counter_after_the_baseline() -> None:
    keys = {"namespace": "a", "pod": "p", "container": "c"}
    totals = tf.to_frame([answer(keys, [(T0, "2"), (T0 + 300, "3"), (T0 + 600, "3"), (T0 + 900, "5")])],
                         ["namespace", "pod", "container"])
    reasons = tf.to_frame([answer({**keys, "reason": "OOMKilled"}, [(T0 + 300, "1"), (T0 + 600, "1"), (T0 + 900, "1")])],
                          ["namespace", "pod", "container", "reason"])
    # T0 is the baseline point (the step before the chunk): 2 restarts happened before, unknown when
    got = tf.restarts_frame(totals, reasons, after=from_epoch(T0))
    assert got.select("ts", "restarts_total", "reason").rows() == [
        (from_epoch(T0 + 300), 3, "OOMKilled"), (from_epoch(T0 + 900), 5, "OOMKilled")]


def test_usage_rows_join_cpu_and_memory_and_take_nodes_from_pods() -> None:
    labels = {"namespace": "a", "pod": "p", "container": "c"}  # a scrape config without `node`
    cpu = tf.to_frame([answer(labels, [(T0, "0.25"), (T0 + 60, "0.5")])], ["namespace", "pod", "container", "node"])
    mem = tf.to_frame([answer(labels, [(T0 + 60, "1048576"), (T0 + 120, "2097152")])],
                      ["namespace", "pod", "container", "node"])
    pods = pl.DataFrame({"namespace": ["a"], "pod": ["p"], "node": ["n7"]})
    usage = tf.fill_usage_nodes(tf.usage_frame(cpu, mem), pods).sort("ts")
    assert usage.select("node", "cpu_cores", "memory_bytes").rows() == [
        ("n7", 0.25, None), ("n7", 0.5, 1048576), ("n7", None, 2097152)]


def test_node_labels_map_back_well_known_names_and_taints_are_json() -> None:
    labels = [answer({"node": "n1", "label_node_kubernetes_io_instance_type": "m5.large", "label_team_x": "a"},
                     [(T0, "1")])]
    cap = tf.to_frame([answer({"node": "n1", "resource": "cpu"}, [(T0, "4")]),
                       answer({"node": "n1", "resource": "memory"}, [(T0, "17179869184")])], ["node", "resource"])
    taints = tf.to_frame([answer({"node": "n1", "key": "k", "value": "v", "effect": "NoSchedule"}, [(T0, "1")])],
                         ["node", "key", "value", "effect"], {"value": "taint_value"})
    nodes = tf.nodes_frame(cap, cap.clear(), labels, taints, 300)
    row = nodes.row(0, named=True)
    assert row["cpu_capacity_cores"] == 4.0 and row["memory_capacity_bytes"] == 16 * 2**30
    assert row["labels"] == '{"node.kubernetes.io/instance-type": "m5.large", "team_x": "a"}'
    assert row["taints"] == '[{"key": "k", "value": "v", "effect": "NoSchedule"}]'


def test_deployments_without_max_surge_are_recreate() -> None:
    replicas = tf.to_frame([answer({"namespace": "a", "deployment": "x"}, [(T0, "3")]),
                            answer({"namespace": "a", "deployment": "y"}, [(T0, "2")])], ["namespace", "deployment"])
    surge = tf.to_frame([answer({"namespace": "a", "deployment": "x"}, [(T0, "1")])], ["namespace", "deployment"])
    got = tf.workloads_frame(replicas, surge, 300).sort("name").select("name", "replicas", "strategy", "max_surge_pods")
    assert got.rows() == [("x", 3, "RollingUpdate", 1), ("y", 2, "Recreate", None)]
    unknown = tf.workloads_frame(replicas, None, 300)  # the metric is absent: strategy unknown
    assert unknown["strategy"].null_count() == 2


def test_malformed_points_are_bad_input() -> None:
    from capplan.errors import BadInputError

    with pytest.raises(BadInputError):
        tf.to_frame([{"metric": {"namespace": "a"}, "values": [["not-a-time", "1"]]}], ["namespace"])


def test_label_values_are_escaped_in_promql() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert label_matcher("namespace", ["web"]) == 'namespace="web"'
    # several values: a regex of literal alternatives, metacharacters quoted, then string-escaped
    assert label_matcher("namespace", ["a.b", 'x"y']) == 'namespace=~"a\\\\.b|x\\"y"'
    query = render(METRICS_BY_KEY["kube_pod_info"], ['evil"} or vector(1) #'], 299_999)
    assert 'namespace="evil\\"} or vector(1) #"' in query


def test_chunks_cover_the_window_without_overlap_and_respect_11000_points() -> None:
    start, end = from_epoch(T0), from_epoch(T0 + 14 * 86400)
    chunks = plan_chunks(start, end, 30, 50_000)
    assert chunks[0].start == start and chunks[-1].end == end
    for a, b in pairwise(chunks):
        assert b.start - a.end == timedelta(seconds=30)
    assert max((c.end - c.start).total_seconds() / 30 + 1 for c in chunks) <= MAX_POINTS_PER_SERIES
    halves = split_range(start, start + timedelta(seconds=300 * 9), 300)  # 10 points -> 5 + 5
    assert halves == [(start, start + timedelta(seconds=1200)), (start + timedelta(seconds=1500), start + timedelta(seconds=2700))]
    assert split_range(start, start, 300) == []


def test_namespaces_are_batched_under_the_series_budget() -> None:
    batches = batch_namespaces({"a": 60, "b": 50, "c": 30, "d": 20, "big": 500}, 100)
    assert sorted(map(sorted, batches)) == [["a", "c"], ["b", "d"], ["big"]]
    assert all(sum({"a": 60, "b": 50, "c": 30, "d": 20, "big": 500}[n] for n in b) <= 100 or len(b) == 1 for b in batches)


def test_kube_state_metrics_label_names_are_snake_case_and_map_back() -> None:
    # kube-state-metrics: invalid bytes -> "_", then camelCase -> snake_case, lower case
    assert tf.sanitize_label_name("eks.amazonaws.com/capacityType") == "eks_amazonaws_com_capacity_type"
    assert tf.sanitize_label_name("node.kubernetes.io/instance-type") == "node_kubernetes_io_instance_type"
    labels = [answer({"node": "n1", "label_eks_amazonaws_com_capacity_type": "SPOT",
                      "label_karpenter_sh_capacity_type": "spot"}, [(T0, "1")])]
    cap = tf.to_frame([answer({"node": "n1", "resource": "cpu"}, [(T0, "4")])], ["node", "resource"])
    row = tf.nodes_frame(cap, cap.clear(), labels, None, 300).row(0, named=True)
    assert row["labels"] == '{"eks.amazonaws.com/capacityType": "SPOT", "karpenter.sh/capacity-type": "spot"}'


def test_cpu_is_spread_over_each_counter_interval_with_resets() -> None:
    # one series: 0.5 cores for 60 s, a reset to 3 (3 s of CPU since the restart), then 0.25 cores;
    # samples 40 s apart, so intervals straddle the 60 s steps
    samples = [(T0 + 0, 100.0), (T0 + 40, 120.0), (T0 + 80, 3.0), (T0 + 120, 13.0)]
    raw = tf.raw_frame([{"metric": {"namespace": "a", "pod": "p", "container": "c", "node": "n"},
                         "values": [[t, str(v)] for t, v in samples]}], ["namespace", "pod", "container", "node"])
    got = tf.cpu_from_counters(raw, ["namespace", "pod", "container", "node"], T0 + 60, T0 + 120, 60, 1000).sort("ts")
    # rates: (T0, T0+40] 0.5; (T0+40, T0+80] 3/40 = 0.075 (reset); (T0+80, T0+120] 0.25.
    # step (T0, T0+60]: 40 s at 0.5 and 20 s at 0.075; step (T0+60, T0+120]: 20 s at 0.075, 40 s at 0.25
    assert got["cpu_cores"].to_list() == pytest.approx([(40 * 0.5 + 20 * 0.075) / 60, (20 * 0.075 + 40 * 0.25) / 60])


def test_usage_from_raw_on_integer_ids_equals_the_string_keyed_join() -> None:
    """usage_from_raw (integer container ids) gives exactly usage_frame(cpu_from_counters,
    memory_peaks) (string keys): two cgroup series of one container summed, a container with
    memory but no CPU counter, one with CPU only, a reset and a gap."""
    keys = ["namespace", "pod", "container", "node"]

    def labels(pod: str, cid: str) -> dict[str, str]:
        return {"namespace": "a", "pod": pod, "container": "c", "node": "n", "id": cid}

    cpu_answers = [
        answer(labels("p1", "x"), [(T0 + 60 * i, str(10.0 + 30 * i)) for i in range(8)]),
        answer(labels("p1", "y"), [(T0 + 30 + 60 * i, str(5.0 + 12 * i)) for i in range(4)]),  # a second cgroup
        answer(labels("p2", "x"), [(T0, "50"), (T0 + 60, "80"), (T0 + 120, "2"), (T0 + 420, "40")]),  # reset, gap
    ]
    memory_answers = [
        answer(labels("p1", "x"), [(T0 + 60 * i, str(1e6 + 7 * i)) for i in range(8)]),
        answer(labels("p3", "x"), [(T0 + 60 * i + 15, str(2e6 - i)) for i in range(8)]),  # memory only
    ]
    cpu = tf.raw_frame(cpu_answers, [*keys, "id"])
    memory = tf.raw_frame(memory_answers, [*keys, "id"])
    lo, hi = T0 + 60, T0 + 420
    want = tf.usage_frame(tf.cpu_from_counters(cpu, keys, lo, hi, 60, 180).rename({"cpu_cores": "value"}),
                          tf.memory_peaks(memory, keys, lo, hi, 60, 60).rename({"memory_bytes": "value"}))
    got = tf.usage_from_raw(cpu, memory, keys, lo, hi, 60, 180, 60)
    order = [*keys, "ts"]
    assert got.height == want.height > 12
    assert got.sort(order).equals(want.sort(order))
    assert set(got["pod"]) == {"p1", "p2", "p3"}


def test_declared_state_expanded_by_slices_equals_the_whole_expansion() -> None:
    """tf.Declared keeps a chunk's declared state compact (kept coarse windows + spec-step
    re-reads) and expands it a slice at a time: any slice is, row for row, the whole expansion
    (expand_coarse + the re-reads, within the chunk) filtered to the slice."""
    keys, coarse_s, spec = ["namespace", "pod"], 3600, 300
    t = [T0 - T0 % coarse_s + coarse_s * i for i in range(6)]
    coarse = pl.DataFrame({"namespace": ["a"] * 6 + ["a"] * 4, "pod": ["p"] * 6 + ["q"] * 4,
                           "T": t + t[:4], "val": [1.0, 1, 1, 2, 2, 2, 5, 5, 5, 5]})
    whole, refine = tf.expand_coarse(coarse, keys, coarse_s, spec)
    kept, refine2 = tf.kept_windows(coarse, keys, coarse_s, spec)
    assert refine.sort(keys + ["T"]).equals(refine2.sort(keys + ["T"]))
    # re-reads: every spec point of each window to refine, value 9
    fine = refine.select(*keys, "T", p=pl.int_ranges(0, coarse_s // spec)).explode("p", empty_as_null=True).select(
        *keys, ts=((pl.col("T") - pl.col("p") * spec) * 1_000_000).cast(tf.TS), value=pl.lit(9.0))
    lo, hi = from_epoch(t[0] + spec), from_epoch(t[5] - spec)
    want = pl.concat([whole, fine.select(whole.columns)]).filter(pl.col("ts").is_between(lo, hi))
    declared = tf.Declared([(kept, fine)], keys, coarse_s, spec, lo, hi)
    assert declared.frame().equals(want)
    cuts = [None, lo + timedelta(minutes=95), lo + timedelta(minutes=200), None]
    pieces = [declared.frame(a, b - timedelta(microseconds=1) if b else None) for a, b in pairwise(cuts[:-1] + [None])]
    assert pl.concat(pieces).sort(keys + ["ts"]).equals(want.sort(keys + ["ts"]))
    middle = declared.frame(cuts[1], cuts[2])
    assert middle.equals(want.filter(pl.col("ts").is_between(cuts[1], cuts[2])))
    assert middle.height > 0 and whole.height > 0 and fine.height > 0


def test_kept_window_ends_store_the_intervals_of_the_whole_expansion() -> None:
    """Declared.frame(reread=...) gives a kept window only its first and last spec point where no
    metric joined into the object's rows was re-read there. Every row it gives is a row of the
    whole expansion, and pods_frame on them, merged per key and value set as store.write_spec
    stores a chunk, equals pods_frame on the whole expansion merged the same way: pod q goes
    from Pending to Running inside a window, pod r appears inside one, pod p never changes."""
    coarse_s, spec = 3600, 300
    t = [T0 - T0 % coarse_s + coarse_s * i for i in range(6)]  # window ends
    grid = range(t[0] - coarse_s + spec, t[5] + spec, spec)
    change, born = t[1] + 4 * spec, t[2] + 7 * spec
    # the truth at every spec point: (pod, label) -> the times its series is there (value 1)
    info_truth = {("p", "n1"): list(grid), ("q", "n1"): list(grid), ("r", "n2"): [s for s in grid if s >= born]}
    phase_truth = {("p", "Running"): list(grid), ("q", "Pending"): [s for s in grid if s <= change],
                   ("q", "Running"): [s for s in grid if s > change], ("r", "Running"): [s for s in grid if s >= born]}

    info = declared(info_truth, "node", t).frame
    phase = declared(phase_truth, "phase", t).frame
    objects = ["namespace", "pod"]
    reread = pl.concat([declared(info_truth, "node", t).reread_windows(objects),
                        declared(phase_truth, "phase", t).reread_windows(objects)]).unique()
    # inside the run (the first and last windows lack a neighbour and are read again) only q and r
    assert set(reread.filter(pl.col("T").is_between(t[1], t[4]))["pod"]) == {"q", "r"}

    def pods(info_rows: pl.DataFrame, phase_rows: pl.DataFrame) -> pl.DataFrame:
        return tf.pods_frame(info_rows.with_columns(priority_class=pl.lit("")), None, None, phase_rows, spec)

    def stored(frame: pl.DataFrame) -> pl.DataFrame:
        values = ["node", "phase"]
        return frame.group_by("namespace", "pod", *values).agg(pl.col("valid_from").min(), pl.col("valid_to").max()) \
            .sort("pod", "valid_from")

    whole = stored(pods(info(), phase()))
    ends = stored(pods(info(reread=reread), phase(reread=reread)))
    assert ends.equals(whole)
    assert whole.filter(pl.col("pod") == "q").rows() == [
        ("a", "q", "n1", "Pending", from_epoch(t[0] + spec), from_epoch(change)),
        ("a", "q", "n1", "Running", from_epoch(change + spec), from_epoch(t[5] - spec))]
    assert whole.filter(pl.col("pod") == "r")["valid_from"].to_list() == [from_epoch(born)]
    for frame in (info, phase):
        few = frame(reread=reread)
        assert few.join(frame(), on=list(few.columns), how="anti").is_empty()
        assert 0 < few.height < frame().height / 2
    # without the re-read windows, q's Pending rows inside its change window would lose their node
    no_reread = reread.clear()
    assert not stored(pods(info(reread=no_reread), phase(reread=no_reread))).equals(whole)


def declared(truth: dict[tuple[str, str], list[tuple[int, float]] | list[int]], label: str, t: list[int],
             coarse_s: int = 3600, spec: int = 300) -> tf.Declared:
    """tf.Declared of a metric whose every spec point is known (`truth`: (pod, label value) ->
    its times, or (time, value) pairs), read as the collector reads it: the last value per
    coarse window ending at each of `t`, the windows that held one value kept, the others
    re-read at the spec step."""
    keys = ["namespace", "pod", label]
    points = pl.DataFrame([{"namespace": "a", "pod": pod, label: value, "s": p if isinstance(p, int) else p[0],
                            "v": 1.0 if isinstance(p, int) else p[1]}
                           for (pod, value), times in truth.items() for p in times])
    coarse = points.sort("s").group_by(*keys, T=(pl.col("s") + coarse_s - 1) // coarse_s * coarse_s).agg(
        val=pl.col("v").last()).filter(pl.col("T").is_in(t))
    kept, refine = tf.kept_windows(coarse, keys, coarse_s, spec)
    fine = points.with_columns(T=(pl.col("s") + coarse_s - 1) // coarse_s * coarse_s).join(
        refine, on=[*keys, "T"], how="semi").select(*keys, ts=(pl.col("s") * 1_000_000).cast(tf.TS), value=pl.col("v"))
    return tf.Declared([(kept, fine)], keys, coarse_s, spec, from_epoch(t[0] + spec), from_epoch(t[5] - spec))


def test_kept_window_ends_find_the_restarts_of_the_whole_expansion() -> None:
    """Restarts are rises between consecutive observations: a kept window holds none, so the
    ends of kept windows give restarts_frame the same rows (a rise inside a window, one at a
    window's edge, and a container that never restarts)."""
    coarse_s, spec = 3600, 300
    t = [T0 - T0 % coarse_s + coarse_s * i for i in range(6)]
    grid = list(range(t[0] - coarse_s + spec, t[5] + spec, spec))
    inside, edge = t[1] + 5 * spec, t[3] + spec  # the first point of window t[4]
    truth = {("p", "c"): [(s, 0.0 if s < inside else (1.0 if s < edge else 2.0)) for s in grid],
             ("q", "c"): [(s, 4.0) for s in grid]}
    totals = declared(truth, "container", t)
    reread = totals.reread_windows(["namespace", "pod"])
    after = from_epoch(t[0] + spec) - timedelta(microseconds=1)
    whole = tf.restarts_frame(totals.frame(), None, after)
    assert whole.select("pod", "ts", "restarts_total").rows() == [("p", from_epoch(inside), 1), ("p", from_epoch(edge), 2)]
    assert tf.restarts_frame(totals.frame(reread=reread), None, after).equals(whole)
    assert totals.frame(reread=reread).height < totals.frame().height / 2


def test_node_labels_changing_inside_a_window_keep_the_node_whole() -> None:
    """Node capacity read per coarse window is cut to the ends of its kept windows except where
    the node's labels (read at the spec step) change inside a window (tf.changing_windows):
    nodes_frame, merged as the store keeps a chunk, is then the one of the whole expansion."""
    coarse_s, spec = 3600, 300
    t = [T0 - T0 % coarse_s + coarse_s * i for i in range(6)]
    grid = list(range(t[0] - coarse_s + spec, t[5] + spec, spec))
    relabel = t[2] + 4 * spec  # n1 moves to zone b inside the window ending at t[3]
    keys = ["node", "resource"]
    points = pl.DataFrame([{"node": node, "resource": res, "s": s, "v": value}
                           for node in ("n1", "n2") for res, value in (("cpu", 4.0), ("memory", 8e9), ("pods", 110.0))
                           for s in grid])
    coarse = points.group_by(*keys, T=(pl.col("s") + coarse_s - 1) // coarse_s * coarse_s).agg(
        val=pl.col("v").last()).filter(pl.col("T").is_in(t))
    kept, refine = tf.kept_windows(coarse, keys, coarse_s, spec)
    fine = points.with_columns(T=(pl.col("s") + coarse_s - 1) // coarse_s * coarse_s).join(
        refine, on=[*keys, "T"], how="semi").select(*keys, ts=(pl.col("s") * 1_000_000).cast(tf.TS), value=pl.col("v"))
    lo, hi = from_epoch(t[0] + spec), from_epoch(t[5] - spec)
    capacity = tf.Declared([(kept, fine)], keys, coarse_s, spec, lo, hi)
    in_range = [s for s in grid if t[0] + spec <= s <= t[5] - spec]
    labels = [answer({"node": "n1", "label_topology_kubernetes_io_zone": "a"}, [(s, "1") for s in in_range if s < relabel]),
              answer({"node": "n1", "label_topology_kubernetes_io_zone": "b"}, [(s, "1") for s in in_range if s >= relabel]),
              answer({"node": "n2", "label_topology_kubernetes_io_zone": "a"}, [(s, "1") for s in in_range])]
    changing = tf.changing_windows(labels, "node", coarse_s, spec, lo, hi)
    assert changing.rows() == [("n1", t[3])]

    def stored(reread: pl.DataFrame | None) -> pl.DataFrame:
        cap = capacity.frame(reread=reread)
        frame = tf.nodes_frame(cap, cap, labels, None, spec)
        values = [c for c in frame.columns if c not in ("node", "valid_from", "valid_to")]
        return frame.group_by("node", *values).agg(pl.col("valid_from").min(), pl.col("valid_to").max()).sort(
            "node", "valid_from")

    whole = stored(None)
    reread = pl.concat([capacity.reread_windows(["node"]), changing]).unique()
    assert stored(reread).equals(whole)
    assert whole.filter(pl.col("node") == "n1")["valid_to"].to_list() == [from_epoch(relabel - spec), from_epoch(t[5] - spec)]
    assert not stored(capacity.reread_windows(["node"])).equals(whole)  # the label change is what keeps n1 whole
