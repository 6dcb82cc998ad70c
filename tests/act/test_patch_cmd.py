"""`capplan patch` on the manifests in tests/data/manifests against the imported sample:
values recomputed by hand from `capplan recommend -f csv`, bytes outside `resources` unchanged
(checked with PyYAML, a second parser), the kustomize overlay built by the real
`kubectl kustomize`, and bad input refused with one line and the files untouched."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from capplan.cli import app
from tests import tools
from tests.act.helpers import (
    KEYS,
    MANIFESTS,
    containers,
    current_values,
    expected_values,
    memory_text,
    outside_resources,
    parse_q,
    workloads,
)

KUBECTL = tools.path("kubectl") or "kubectl"


@pytest.fixture(scope="module")
def kubectl() -> str:
    """The real kubectl (>= 1.21: its kustomize reads `patches:`); missing is a failure, not a skip."""
    assert Path(KUBECTL).exists(), "kubectl is needed to build the kustomize overlays (kubectl >= 1.21)"
    return KUBECTL


@pytest.fixture(scope="module")
def rec_rows(sample_db_readonly: Path) -> dict:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["recommend", "--db", str(sample_db_readonly), "-f", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    return {(r["namespace"], r["owner_kind"], r["owner_name"], r["container"]): r for r in rows}


@pytest.fixture()
def manifests(tmp_path: Path) -> Path:
    target = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, target)
    return target


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _namespace(path: Path, obj: dict) -> str:
    if path.parent.name == "data-base":
        return "data"   # from data-base/kustomization.yaml
    return obj["metadata"].get("namespace", "batch")   # batch: passed as --namespace


SEVERITY = {"critical": 4, "warning": 3, "ok": 2, "good": 1, "unknown": 0}


def _check_values(before: Path, after: Path, rec_rows: dict, min_change: float, min_severity: int) -> int:
    """Every container in `after` holds what the rule gives from `before` and the CSV; returns
    how many containers changed."""
    changed = 0
    for old_file in sorted(before.rglob("*.yaml")):
        if old_file.name == "kustomization.yaml":
            continue
        new_file = after / old_file.relative_to(before)
        old_w = workloads(list(yaml.safe_load_all(old_file.read_text())))
        new_w = workloads(list(yaml.safe_load_all(new_file.read_text())))
        for (old_obj, kind), (new_obj, _) in zip(old_w, new_w, strict=True):
            ns = _namespace(old_file, old_obj)
            for oc, nc in zip(containers(old_obj, kind), containers(new_obj, kind), strict=True):
                row = rec_rows.get((ns, kind, old_obj["metadata"]["name"], oc["name"]))
                cur = current_values(oc)
                if row is None or row["severity"] == "unknown" or SEVERITY[row["severity"]] < min_severity:
                    want = cur
                else:
                    want = expected_values(cur, row, min_change)
                got = current_values(nc)
                assert got == want, (old_file.name, oc["name"], got, want)
                changed += got != cur
    return changed


def test_diff_prints_the_hand_computed_values_and_changes_nothing(runner, sample_db_readonly, manifests, rec_rows,
                                                                  tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = _digests(manifests)
    result = runner.invoke(app, ["patch", "manifests", "--db", str(sample_db_readonly), "-n", "batch",
                                 "--format", "diff"])
    assert result.exit_code == 0, result.stderr
    assert _digests(manifests) == before
    assert "--- a/manifests/data-base/postgres.yaml\n+++ b/manifests/data-base/postgres.yaml\n" in result.stdout
    # the diff applies with the real `patch` tool, and the patched files hold the hand-computed values
    applied = tmp_path / "applied"
    shutil.copytree(manifests, applied)
    subprocess.run(["patch", "-p2", "-s", "-d", str(applied)], input=result.stdout, text=True, check=True)
    assert _check_values(manifests, applied, rec_rows, 0.10, SEVERITY["warning"]) >= 10
    # QoS changes are named; containers without a recommendation and unmatched rows are listed
    assert "web/Deployment/legacy-admin" in result.stderr
    assert "QoS class changes Guaranteed -> Burstable" in result.stderr
    assert "unchanged: data/StatefulSet/postgres init-perms" in result.stderr
    assert "unmatched recommendation: monitoring/Pod/debug-shell-0 shell" in result.stderr


@pytest.mark.parametrize(("min_change", "severity"), [("10%", "warning"), ("50%", "warning"), ("0", "critical"),
                                                     ("10%", "good")])
def test_inplace_values_and_bytes_outside_resources(runner, sample_db_readonly, manifests, rec_rows, tmp_path,
                                                     min_change, severity) -> None:
    original = tmp_path / "original"
    shutil.copytree(manifests, original)
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch",
                                 "--min-change", min_change, "--severity", severity])
    assert result.exit_code == 0, result.stderr
    fraction = float(min_change.rstrip("%")) / (100 if min_change.endswith("%") else 1)
    changed = _check_values(original, manifests, rec_rows, fraction, SEVERITY[severity])
    assert changed > 0
    for old_file in sorted(original.rglob("*.yaml")):
        new_text = (manifests / old_file.relative_to(original)).read_text()
        assert outside_resources(new_text) == outside_resources(old_file.read_text()), old_file.name
    # comments inside a resources block survive too
    assert "          # one core per replica" in (manifests / "data-base" / "postgres.yaml").read_text()
    assert "# flow style on purpose" in (manifests / "cluster" / "ml-monitoring.yaml").read_text()


def test_limits_never_below_requests_and_quantities_are_kubernetes_style(runner, sample_db_readonly, manifests) -> None:
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch",
                                 "--min-change", "0"])
    assert result.exit_code == 0, result.stderr
    seen = 0
    for path in manifests.rglob("*.yaml"):
        for obj, kind in workloads(list(yaml.safe_load_all(path.read_text()))):
            for c in containers(obj, kind):
                res = c.get("resources") or {}
                for (section, resource) in KEYS:
                    value = (res.get(section) or {}).get(resource)
                    if value is not None:
                        seen += 1
                        text = str(value)
                        assert text.endswith(("m", "Mi", "Gi")) or text.isdigit(), text
                for resource in ("cpu", "memory"):
                    req, lim = (res.get("requests") or {}).get(resource), (res.get("limits") or {}).get(resource)
                    if req is not None and lim is not None:
                        assert parse_q(lim) >= parse_q(req), (c["name"], resource)
    assert seen > 30


def test_kustomize_overlay_builds_to_the_inplace_result(runner, sample_db_readonly, manifests, tmp_path, kubectl) -> None:
    base = manifests / "data-base"
    overlay = tmp_path / "overlay"
    before = _digests(base)
    result = runner.invoke(app, ["patch", str(base), "--db", str(sample_db_readonly), "--format", "kustomize",
                                 "-o", str(overlay)])
    assert result.exit_code == 0, result.stderr
    assert _digests(base) == before
    assert sorted(p.name for p in overlay.iterdir()) == [
        "deployment-data-session-cache.yaml", "kustomization.yaml", "statefulset-data-postgres.yaml",
        "statefulset-data-redis.yaml"]
    built = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
    result = runner.invoke(app, ["patch", str(base), "--db", str(sample_db_readonly)])
    assert result.exit_code == 0, result.stderr
    patched = subprocess.run([kubectl, "kustomize", str(base)], capture_output=True, text=True, check=True).stdout

    def objects(text: str) -> list:
        docs = list(yaml.safe_load_all(text))
        for obj, kind in workloads(docs):
            for c in containers(obj, kind):
                res = c.get("resources")
                if res is not None:   # `cpu: null` in a patch leaves `limits: {}`: the same as no limits
                    c["resources"] = {k: v for k, v in res.items() if v}
        return docs

    assert objects(built) == objects(patched)
    # session-cache's memory request is the one `capplan recommend` gives (not a number frozen
    # from one version of the auto strategy)
    rec = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "-n", "data", "-f", "csv"])
    cache = next(r for r in csv.DictReader(io.StringIO(rec.stdout)) if r["owner_name"] == "session-cache")
    assert f"memory: {memory_text(Decimal(cache['memory_request_recommended']))}" in built


def test_kustomize_refuses_plain_files_outside_the_overlay(runner, sample_db_readonly, manifests, tmp_path) -> None:
    result = runner.invoke(app, ["patch", str(manifests / "chart-web"), "--db", str(sample_db_readonly),
                                 "--format", "kustomize", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "rendered.yaml" in result.stderr and "kustomization.yaml" in result.stderr
    assert not (tmp_path / "out").exists()


BAD = {
    "malformed.yaml": ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n   bad: [1, 2\n", 4, ":5:"),
    "values.yaml": ("replicaCount: 2\nimage:\n  tag: latest\n", 4, "not a Kubernetes object"),
    "typo.yaml": ("apiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: x\n", 4, "unknown kind 'Deploymnet'"),
    "quantity.yaml": (("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: web}\nspec:\n  containers:\n"
                      "  - name: c\n    image: i\n    resources: {requests: {cpu: lots}}\n"), 4, ":8:"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_manifests_are_one_line_and_nothing_is_written(runner, sample_db_readonly, manifests, name) -> None:
    text, code, where = BAD[name]
    (manifests / name).write_text(text)
    before = _digests(manifests)
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch"])
    assert result.exit_code == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert name in result.stderr and where in result.stderr
    assert _digests(manifests) == before


def test_a_container_the_store_never_saw_is_refused(runner, sample_db_readonly, manifests) -> None:
    path = manifests / "data-base" / "session-cache.yaml"
    path.write_text(path.read_text() + "      - name: debug\n        image: busybox\n")
    before = _digests(manifests)
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch"])
    assert result.exit_code == 6
    line = result.stderr.strip()
    assert "session-cache.yaml:22:" in line and "'debug'" in line and "not in the store" in line
    assert _digests(manifests) == before


def test_unmatched_manifest_is_listed(runner, sample_db_readonly, manifests) -> None:
    (manifests / "ghost.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ghost, namespace: web}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: g, image: g}]\n")
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch",
                                 "--format", "diff"])
    assert result.exit_code == 0, result.stderr
    assert "unmatched manifest: web/Deployment/ghost" in result.stderr
    assert "ghost.yaml" not in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "yaml"], "--format"), (["--min-change", "ten"], "--min-change"),
    (["--severity", "huge"], "--severity"), (["--format", "kustomize"], "-o DIR"),
])
def test_wrong_options_are_exit_2(runner, sample_db_readonly, manifests, args, message) -> None:
    result = runner.invoke(app, ["patch", str(manifests), "--db", str(sample_db_readonly), "-n", "batch", *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_manifest_without_namespace_needs_the_option(runner, sample_db_readonly, manifests) -> None:
    result = runner.invoke(app, ["patch", str(manifests / "batch"), "--db", str(sample_db_readonly)])
    assert result.exit_code == 2
    assert "nightly-report.yaml:2" in result.stderr and "--namespace" in result.stderr
