"""`capplan check` on tests/data/manifests: the expected findings recomputed here from the
manifests (PyYAML) and from the sample's own Parquet files (numpy percentiles), each output
format read back with a real parser, the policy file, and exit 7."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from capplan.cli import app
from tests.act.helpers import MANIFESTS, ROOT, containers, current_values, workloads

SAMPLE = ROOT / "data" / "samples" / "cluster"
CONTRACT_COLUMNS = ["file", "line", "namespace", "kind", "name", "container", "rule", "severity", "current", "observed", "message"]


def _manifest_containers() -> list[tuple[str, str, str, str, dict]]:
    """(file name, namespace, kind/name, container, current values) of every manifest container."""
    out = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for obj, kind in workloads(list(yaml.safe_load_all(path.read_text()))):
            ns = "data" if path.parent.name == "data-base" else obj["metadata"].get("namespace", "batch")
            for c in containers(obj, kind):
                out.append((path.name, ns, f"{kind}/{obj['metadata']['name']}", c["name"], current_values(c)))
    return out


def _json(runner, *args: str) -> tuple[int, list[dict]]:
    result = runner.invoke(app, ["check", str(MANIFESTS), "-n", "batch", "-f", "json", *args])
    assert result.exit_code in (0, 7), result.stderr
    return result.exit_code, json.loads(result.stdout)


def _keys(findings: list[dict]) -> set[tuple]:
    return {(Path(f["file"]).name, f["container"], f["rule"], f.get("resource")) for f in findings}


def test_static_rules_without_a_database(runner, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)   # no ./capplan.duckdb here, no $CAPPLAN_DB: static rules only
    monkeypatch.delenv("CAPPLAN_DB", raising=False)
    code, findings = _json(runner)
    want = set()
    for file, _ns, _w, container, cur in _manifest_containers():
        for res in ("cpu", "memory"):
            if cur[f"{res}_request"] is None and cur[f"{res}_limit"] is None:
                want.add((file, container, "missing-requests", res))
        if cur["memory_limit"] is None:
            want.add((file, container, "missing-memory-limit", "memory"))
    assert _keys(findings) == want
    assert code == 7   # missing requests are errors by default
    assert all(f["severity"] in ("error", "warning") for f in findings)


def _usage_by_workload() -> dict[tuple, dict]:
    """Peak and p95 per workload container from the sample's Parquet files, rolled up by hand."""
    usage = pl.read_parquet(SAMPLE / "usage.parquet").to_dict(as_series=False)
    top = {(r["namespace"], r["kind"], r["name"]): (r["owner_kind"], r["owner_name"])
           for r in pl.read_parquet(SAMPLE / "owners.parquet").to_dicts() if r["owner_kind"]}
    workload = {}
    for r in pl.read_parquet(SAMPLE / "pods.parquet").to_dicts():
        if r["owner_kind"] is None:
            workload[(r["namespace"], r["pod"])] = ("Pod", r["pod"])
        else:
            workload[(r["namespace"], r["pod"])] = top.get((r["namespace"], r["owner_kind"], r["owner_name"]),
                                                           (r["owner_kind"], r["owner_name"]))
    end = max(usage["ts"])
    start = end - timedelta(days=14)
    out: dict[tuple, dict] = {}
    for ns, pod, container, ts, cpu, memory in zip(usage["namespace"], usage["pod"], usage["container"], usage["ts"],
                                                   usage["cpu_cores"], usage["memory_bytes"], strict=True):
        if ts < start:
            continue
        kind, name = workload[(ns, pod)]
        entry = out.setdefault((ns, f"{kind}/{name}", container), {"cpu": [], "memory": []})
        entry["cpu"].append(cpu)
        entry["memory"].append(memory)
    # cpu_cores is float32 in the file (and REAL in the store): percentiles of the float32 values
    return {k: {"memory_peak": float(max(v["memory"])),
                "memory_p95": float(np.percentile(np.array(v["memory"], dtype=np.float64), 95)),
                "cpu_p95": float(np.percentile(np.array(v["cpu"], dtype=np.float32).astype(np.float64), 95))}
            for k, v in out.items()}



def test_usage_rules_with_the_sample_database(runner, sample_db_readonly) -> None:
    result = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "-f", "csv"])
    recs = {(r["namespace"], f"{r['owner_kind']}/{r['owner_name']}", r["container"]): r
            for r in csv.DictReader(io.StringIO(result.stdout))}
    usage = _usage_by_workload()
    code, findings = _json(runner, "--db", str(sample_db_readonly))
    want = set()
    for file, ns, w, container, cur in _manifest_containers():
        u = usage.get((ns, w, container))
        if u is None:
            want.add((file, container, "no-usage-data", None))
            continue
        lim = cur["memory_limit"]
        if lim is not None and float(lim) < u["memory_peak"] * 1.10:
            want.add((file, container, "memory-limit-below-peak", "memory"))
        for res in ("cpu", "memory"):
            req = cur[f"{res}_request"] if cur[f"{res}_request"] is not None else cur[f"{res}_limit"]
            if req is not None and float(req) < u[f"{res}_p95"] * 0.75:
                want.add((file, container, "request-below-p95", res))
            rec = recs[(ns, w, container)][f"{res}_request_recommended"]
            if cur[f"{res}_request"] is not None and rec and cur[f"{res}_request"] > 3 * Decimal(rec):
                want.add((file, container, "request-waste", res))
    static = {"missing-requests", "missing-memory-limit"}
    assert {k for k in _keys(findings) if k[2] not in static} == want
    assert ("rendered.yaml", "resizer", "memory-limit-below-peak", "memory") in want   # the OOM-killed one
    assert ("rendered.yaml", "admin", "request-waste", "cpu") in want                 # the idle one
    assert code == 7
    resizer = next(f for f in findings if f["rule"] == "memory-limit-below-peak")
    assert resizer["current"] == 512 * 2**20 and resizer["observed"] == int(usage[("web", "Deployment/image-resizer", "resizer")]["memory_peak"])


def test_policy_file_thresholds_and_exit_code(runner, sample_db_readonly, tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("fail_on: error\nrules:\n  missing-requests: warning\n  memory-limit-below-peak: {severity: warning}\n"
                      "  request-waste: {factor: 100}\n  best-effort-protected: {namespaces: [batch, 'prod-*']}\n"
                      "  missing-memory-limit: off\n")
    result = runner.invoke(app, ["check", str(MANIFESTS), "-n", "batch", "-f", "json", "--db", str(sample_db_readonly),
                                 "--policy", str(policy)])
    findings = json.loads(result.stdout)
    rules = {(f["container"], f["rule"]): f["severity"] for f in findings}
    assert rules[("report", "best-effort-protected")] == "error"    # nightly-report is BestEffort in batch
    assert result.exit_code == 7
    assert ("admin", "request-waste") in rules   # 333x the recommended CPU, still above 100x
    assert not any(r == "missing-memory-limit" for _, r in rules)
    assert rules[("resizer", "memory-limit-below-peak")] == "warning"
    policy.write_text(policy.read_text().replace("[batch, 'prod-*']", "['prod-*']"))
    result = runner.invoke(app, ["check", str(MANIFESTS), "-n", "batch", "--db", str(sample_db_readonly),
                                 "--policy", str(policy)])
    assert result.exit_code == 0, result.stderr
    assert "check passed" in result.stderr


@pytest.mark.parametrize(("text", "where"), [
    ("rules:\n  no-such-rule: error\n", "policy.yaml:2: unknown rule 'no-such-rule'"),
    ("rules:\n  request-waste:\n    factor: lots\n", "policy.yaml:3: factor must be a non-negative number"),
    ("fail_on: sometimes\n", "policy.yaml:1: fail_on"),
    ("rules: [1, 2\n", "policy.yaml:2:1: malformed YAML"),
])
def test_bad_policy_is_exit_4_naming_the_line(runner, tmp_path, text, where) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    result = runner.invoke(app, ["check", str(MANIFESTS), "-n", "batch", "--static", "--policy", str(policy)])
    assert result.exit_code == 4
    assert where in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_csv_junit_and_github_formats(runner, sample_db_readonly) -> None:
    base = ["check", str(MANIFESTS), "-n", "batch", "--db", str(sample_db_readonly)]
    findings = json.loads(runner.invoke(app, [*base, "-f", "json"]).stdout)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*base, "-f", "csv"]).stdout)))
    assert list(rows[0])[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert len(rows) == len(findings)
    memory = [r for r in rows if r["resource"] == "memory" and r["current"]]
    assert memory and all(r["current"].isdigit() and r["observed"].isdigit() for r in memory)   # whole bytes
    # JUnit: one testcase per container, a failure where an error finding is
    result = runner.invoke(app, [*base, "-f", "junit"])
    assert result.exit_code == 7
    root = ET.fromstring(result.stdout)
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(_manifest_containers())
    failing = {(f["kind"] + "/" + f["name"], f["container"]) for f in findings if f["severity"] == "error"}
    got = {(c.get("classname").split("/", 1)[1], c.get("name")) for c in cases if c.find("failure") is not None}
    assert got == failing and int(root.get("failures")) == len(failing)
    # GitHub annotations: one workflow command per finding, parsed back
    result = runner.invoke(app, [*base, "-f", "github"])
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]+),line=(\d+),title=([^:]+)::(.+)$")
    parsed = [pattern.match(line) for line in result.stdout.splitlines()]
    assert all(parsed) and len(parsed) == len(findings)
    assert {(m[1], Path(m[2]).name, int(m[3])) for m in parsed} == {
        (f["severity"], Path(f["file"]).name, f["line"]) for f in findings}


def test_lines_point_at_the_value(runner, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, findings = _json(runner, "--static")
    text = (MANIFESTS / "data-base" / "redis.yaml").read_text().splitlines()
    seen = 0
    for f in findings:
        if Path(f["file"]).name == "redis.yaml" and f["rule"] == "missing-memory-limit":
            assert text[f["line"] - 1].strip() == "resources:"
            seen += 1
    assert seen == 2


def test_the_documented_policy_example_loads_and_every_rule_is_documented(tmp_path) -> None:
    from capplan.act.policy import DEFAULT_RULES, load_policy

    doc = (ROOT / "docs" / "patch.md").read_text()
    example = doc.split("### Policy file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "policy.yaml"
    path.write_text(example)
    policy = load_policy(path)
    assert policy.get("cpu-limit-ratio", "min_ratio") == 2
    assert policy.severity("no-usage-data") == "off"
    assert policy.get("best-effort-protected", "namespaces") == ["kube-system", "prod-*"]
    for rule in DEFAULT_RULES:
        assert f"| `{rule}` |" in doc


def test_a_malformed_manifest_is_exit_4_not_a_finding(runner, tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p\n")
    result = runner.invoke(app, ["check", str(tmp_path), "--static"])
    assert result.exit_code == 4
    assert "bad.yaml:" in result.stderr and "malformed YAML" in result.stderr
