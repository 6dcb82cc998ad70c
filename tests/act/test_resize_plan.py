"""`capplan resize-plan`: on the demo, every command's values recomputed from the recommend CSV
and the sample's container specs; each reason a pod cannot be resized in place checked on a pod
built for it."""

from __future__ import annotations

import csv
import io
import json
import shlex
from decimal import Decimal

import polars as pl
import pytest

from capplan.act.plan import Recommendations
from capplan.act.resize import _plan_pod
from capplan.cli import app
from tests.act.helpers import MANIFESTS, ROOT, cpu_text, expected_values, memory_text

SAMPLE = ROOT / "data" / "samples" / "cluster"
GI, MI = 2**30, 2**20


def _latest_specs() -> dict[tuple[str, str, str], dict]:
    specs = {}
    for r in sorted(pl.read_parquet(SAMPLE / "containers.parquet").to_dicts(), key=lambda r: r["valid_to"]):
        specs[(r["namespace"], r["pod"], r["container"])] = r
    return specs


def test_demo_plan_commands_hold_the_recommended_values(runner, sample_db_readonly) -> None:
    rec_csv = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "-f", "csv"]).stdout
    recs = {(r["namespace"], r["owner_kind"], r["owner_name"], r["container"]): r
            for r in csv.DictReader(io.StringIO(rec_csv))}
    result = runner.invoke(app, ["resize-plan", "--db", str(sample_db_readonly), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    plans = json.loads(result.stdout)
    specs = _latest_specs()
    status = {p["pod"]: p["status"] for p in plans}
    # Guaranteed pods whose CPU limit auto drops, and BestEffort pods gaining requests: QoS changes
    for pod in ("postgres-0", "debug-shell-0"):
        assert status[pod] == "blocked"
    assert any("QoS class would change Guaranteed -> Burstable" in b
               for p in plans if p["owner_name"] == "legacy-admin" for b in p["blocked"])
    commands = 0
    for p in plans:
        if p["command"] is None:
            continue
        commands += 1
        argv = shlex.split(p["command"])
        assert argv[:6] == ["kubectl", "patch", "pod", p["pod"], "-n", p["namespace"]]
        assert argv[6:10] == ["--subresource", "resize", "--type", "strategic"]
        body = json.loads(argv[11])
        for section in ("containers", "initContainers"):
            for entry in body["spec"].get(section, []):
                spec = specs[(p["namespace"], p["pod"], entry["name"])]
                cur = {k: (Decimal(str(spec[f"{k}_{'cores' if k.startswith('cpu') else 'bytes'}"]))
                           if spec[f"{k}_{'cores' if k.startswith('cpu') else 'bytes'}"] is not None else None)
                       for k in ("cpu_request", "cpu_limit", "memory_request", "memory_limit")}
                row = recs[(p["namespace"], p["owner_kind"], p["owner_name"], entry["name"])]
                want = expected_values(cur, row)
                for key, value in want.items():
                    resource, kind = key.split("_")
                    section_name = "limits" if kind == "limit" else "requests"
                    written = entry["resources"].get(section_name, {}).get(resource)
                    if value is None or value == cur[key]:
                        assert written is None, (p["pod"], key)   # removals and unchanged values stay out
                    else:
                        assert written == (cpu_text(value) if resource == "cpu" else memory_text(value)), (p["pod"], key)
    assert commands >= 20
    script = runner.invoke(app, ["resize-plan", "--db", str(sample_db_readonly), "--commands"]).stdout
    assert script.count("kubectl patch pod") == commands


def test_manifests_that_still_say_otherwise_block_the_pod(runner, sample_db_readonly) -> None:
    result = runner.invoke(app, ["resize-plan", "--db", str(sample_db_readonly), "-f", "json", "-n", "data",
                                 "--manifests", str(MANIFESTS / "data-base")])
    plans = {p["pod"]: p for p in json.loads(result.stdout)}
    assert plans["redis-0"]["status"] == "blocked"
    assert any("the manifest still says otherwise" in b for b in plans["redis-0"]["blocked"])


def _recs(rows: dict) -> Recommendations:
    full = {}
    for key, values in rows.items():
        full[key] = {"severity": "warning", "reason": "", **{f"{k}_recommended": v for k, v in values.items()}}
    return Recommendations(rows=full, store_containers={k[:3]: {k[3]} for k in rows}, strategy="auto")


def _row(container="app", cpu_req=0.5, cpu_lim=None, mem_req=1 * GI, mem_lim=2 * GI, working_set=1.0 * GI,
         init=False, restartable=False) -> dict:
    return {"namespace": "ns", "pod": "p-1", "container": container, "owner_kind": "Deployment",
            "owner_name": "w", "node": "n1", "init_container": init, "restartable": restartable,
            "cpu_request_cores": cpu_req, "cpu_limit_cores": cpu_lim, "memory_request_bytes": mem_req,
            "memory_limit_bytes": mem_lim, "memory_recent_max_bytes": working_set}


REC = {"cpu_request": 0.3, "cpu_limit": None, "memory_request": 0.75 * GI, "memory_limit": 1.5 * GI}


@pytest.mark.parametrize(("version", "status", "limit_in_patch", "reason"), [
    ((1, 35), "resize", "1536Mi", None),
    ((1, 34), "partial", None, "refused in place before 1.35"),
    ((1, 26), "blocked", None, "does not exist before 1.27"),
])
def test_memory_limit_decrease_depends_on_the_version(version, status, limit_in_patch, reason) -> None:
    plan = _plan_pod("ns", "p-1", [_row()], _recs({("ns", "Deployment", "w", "app"): REC}), version, 0.1, 3, None)
    assert plan.status == status
    if plan.patch:
        (entry,) = plan.patch["spec"]["containers"]
        assert entry["resources"]["requests"] == {"cpu": "300m", "memory": "768Mi"}
        assert entry["resources"].get("limits", {}).get("memory") == limit_in_patch
    if reason:
        assert any(reason in b for b in plan.blocked)


def test_a_memory_limit_below_the_working_set_is_refused() -> None:
    plan = _plan_pod("ns", "p-1", [_row(working_set=1.7 * GI)], _recs({("ns", "Deployment", "w", "app"): REC}),
                     (1, 35), 0.1, 3, None)
    assert plan.status == "partial"
    assert "limits" not in plan.patch["spec"]["containers"][0]["resources"]
    assert any("below the recent working set 1741Mi" in b for b in plan.blocked)


def test_removing_a_limit_is_kept_out_and_a_qos_change_blocks() -> None:
    guaranteed = _row(cpu_req=1.0, cpu_lim=1.0, mem_req=GI, mem_lim=GI)
    rec = {"cpu_request": 0.5, "cpu_limit": None, "memory_request": GI, "memory_limit": GI}
    plan = _plan_pod("ns", "p-1", [guaranteed], _recs({("ns", "Deployment", "w", "app"): rec}), (1, 35), 0.1, 3, None)
    assert plan.status == "blocked" and plan.command is None
    assert plan.blocked[0].startswith("QoS class would change Guaranteed -> Burstable")
    assert any("removing the cpu limit cannot be done in place" in b for b in plan.blocked)


def test_plain_init_containers_are_not_resized_but_sidecars_are() -> None:
    rows = [_row("init", init=True), _row("side", init=True, restartable=True), _row("app")]
    recs = _recs({("ns", "Deployment", "w", c): REC for c in ("init", "side", "app")})
    plan = _plan_pod("ns", "p-1", rows, recs, (1, 35), 0.1, 3, None)
    assert [e["name"] for e in plan.patch["spec"]["initContainers"]] == ["side"]
    assert [e["name"] for e in plan.patch["spec"]["containers"]] == ["app"]
    assert plan.command.startswith("kubectl patch pod p-1 -n ns --subresource resize --type strategic -p ")
