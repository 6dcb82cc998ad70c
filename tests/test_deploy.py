"""deploy/ and the Dockerfile: the manifests parse, follow the practices the service relies on
(probes, preStop, grace period, declared resources, no RBAC), and every command line in them uses
options the typer app really has."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import typing
import urllib.request
from pathlib import Path

import pytest
import typer

from capplan import store
from capplan.cli import app
from capplan.serve.app import build_app
from capplan.serve.config import ServeOptions
from capplan.serve.endpoints import API_PREFIX, ENDPOINTS
from capplan.serve.state import ServiceState

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount"}


def documents() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":  # kustomize's own file, not a Kubernetes object
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path, doc))
    return out


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def command_options(name: str) -> tuple[set[str], set[str]]:
    """(all option names, boolean flags) of `capplan NAME`, read from the typer app."""
    info = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == name)
    hints = typing.get_type_hints(info.callback, include_extras=True)
    names, flags = set(), set()
    for param, hint in hints.items():
        if param == "return":
            continue
        option = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, typer.models.OptionInfo)), None)
        decls = [d for d in (option.param_decls or ()) if d.startswith("-")] if option else []
        decls = decls or [f"--{param.replace('_', '-')}"]
        names.update(decls)
        base = typing.get_args(hint)[0] if typing.get_args(hint) else hint
        if base is bool:
            flags.update(decls)
    return names, flags


def check_args(args: list[str]) -> None:
    """`args` is a capplan command line whose every option exists (values may be $(ENV) refs)."""
    command, rest = args[0], args[1:]
    names, flags = command_options(command)
    i = 0
    while i < len(rest):
        arg = rest[i]
        assert arg.startswith("-"), f"capplan {command}: stray argument {arg!r}"
        name, eq, _value = arg.partition("=")
        assert name in names, f"capplan {command} has no option {name} (it has {sorted(names)})"
        if not eq and name not in flags:
            i += 1  # the value is the next argument
        i += 1


def containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def test_every_manifest_parses_and_names_itself() -> None:
    docs = documents()
    assert {p.name for p, _ in docs} >= {"deployment.yaml", "service.yaml", "servicemonitor.yaml"}
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        assert doc["metadata"]["name"], path
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).exists(), resource


def test_no_rbac_and_no_api_token() -> None:
    kinds = {doc["kind"] for _, doc in documents()}
    assert not kinds & RBAC_KINDS
    (deployment,) = by_kind("Deployment")
    assert pod_spec(deployment)["automountServiceAccountToken"] is False


def test_command_lines_use_real_options() -> None:
    seen = set()
    for _, doc in documents():
        if doc["kind"] in ("Deployment", "CronJob"):
            for container in containers(doc):
                check_args(container["args"])
                seen.add(container["args"][0])
    assert "serve" in seen
    # the checker itself rejects what does not exist
    with pytest.raises(AssertionError):
        check_args(["serve", "--no-such-option=1"])
    with pytest.raises(AssertionError):
        check_args(["collect", "--prometheus-url", "http://x", "--colour"])


def test_commented_alternatives_use_real_options_too() -> None:
    text = (DEPLOY / "deployment.yaml").read_text()
    commented = re.findall(r"^\s*#\s*- (--[a-z-]+)=", text, flags=re.M)
    assert "--collect-every" in commented
    names, _ = command_options("serve")
    assert set(commented) <= names


def test_deployment_probes_shutdown_and_resources() -> None:
    (deployment,) = by_kind("Deployment")
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    port = next(p for p in container["ports"] if p["name"] == "http")["containerPort"]
    assert f"--port={port}" in container["args"]
    # serve listens on 127.0.0.1 unless told: in a pod it must listen on the pod IP
    assert "--host=0.0.0.0" in container["args"]
    # probes hit the service's real routes, on the named port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    routes = {route.path for route in build_app(ServiceState(ServeOptions(db=None))).routes}
    assert {"/healthz", "/readyz", "/metrics"} <= routes
    assert container["readinessProbe"]["timeoutSeconds"] >= 5  # a DB open may wait 3 s for a commit
    # preStop + the drain must end before SIGKILL
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    sleep = int(re.search(r"sleep (\d+)", " ".join(pre_stop)).group(1))
    drain = next(a for a in container["args"] if a.startswith("--shutdown-timeout="))
    drain_seconds = int(re.fullmatch(r"--shutdown-timeout=(\d+)s", drain).group(1))
    assert sleep + drain_seconds < spec["terminationGracePeriodSeconds"] <= 30
    assert container["terminationMessagePath"] == "/dev/termination-log"
    # declared resources; memory request = limit (incompressible)
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
    # capplan is told that limit (it sizes DuckDB from it): the downward API of this very container
    given = next(e for e in container["env"] if e["name"] == store.PROCESS_MEMORY_ENV)["valueFrom"]["resourceFieldRef"]
    assert given == {"containerName": container["name"], "resource": "limits.memory"}
    # the DB lives on the PVC the CronJob writes
    mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert f"--db={mount['mountPath']}/capplan.duckdb" in container["args"]
    claim = next(v for v in spec["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    claims = {doc["metadata"]["name"] for doc in by_kind("PersistentVolumeClaim")}
    if claims:
        assert claim in claims


def test_scrape_config_points_at_metrics() -> None:
    (deployment,) = by_kind("Deployment")
    (service,) = by_kind("Service")
    (monitor,) = by_kind("ServiceMonitor")
    port = next(p for p in containers(deployment)[0]["ports"] if p["name"] == "http")["containerPort"]
    for notes in (deployment["spec"]["template"]["metadata"]["annotations"], service["metadata"]["annotations"]):
        assert notes["prometheus.io/scrape"] == "true"
        assert notes["prometheus.io/port"] == str(port)
        assert notes["prometheus.io/path"] == "/metrics"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_cronjob_is_cron_safe() -> None:
    jobs = by_kind("CronJob")
    assert jobs, "deploy/cronjob.yaml holds the scheduled collection"
    for job in jobs:
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        assert containers(job)[0]["args"][0] == "collect"
        for container in containers(job):
            assert container["resources"]["requests"] and container["resources"]["limits"]
        volumes = pod_spec(job)["volumes"]
        assert any("persistentVolumeClaim" in v for v in volumes)


def test_dockerfile_builds_from_the_repository_and_runs_serve() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for item in source.split():
            assert (ROOT / item).exists(), f"Dockerfile copies {item}, which is not in the repository"
    assert re.search(r'^ENTRYPOINT \["capplan"\]$', text, flags=re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.M).group(1)
    check_args(yaml.safe_load(cmd))  # a JSON list is YAML too
    assert "--host=0.0.0.0" in yaml.safe_load(cmd)
    assert re.search(r"^USER 10001$", text, flags=re.M)  # matches the manifests' runAsUser
    (deployment,) = by_kind("Deployment")
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == 10001


def test_api_endpoints_listed_in_the_service_are_the_issue_s() -> None:
    assert {"nodes", "namespaces", "eviction", "recommendations", "forecast", "fit"} <= {e.name for e in ENDPOINTS}
    assert API_PREFIX == "/api/v1"


def _scrape_metrics(db: Path) -> str:
    """/metrics of a real `capplan serve` on `db` (started here, on a free port, then stopped)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "capplan", "serve", "--db", str(db), "--host", "127.0.0.1",
                             "--port", str(port), "--max-staleness", "0", "--termination-log", os.devnull],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    text = None
    try:
        deadline = time.monotonic() + 60
        while text is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
                    text = resp.read().decode()
            except OSError:
                time.sleep(0.2)  # not listening yet
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert text is not None, f"capplan serve did not answer /metrics: {err}"
    return text


def test_alert_rules_use_metrics_the_service_exports(sample_db_readonly: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    # every metric a real scrape of `capplan serve` on the demo sample carries (a name in a rule
    # that is not there would never fire): family names, and the names of their samples
    families = list(text_string_to_metric_families(_scrape_metrics(sample_db_readonly)))
    exported = {f.name for f in families} | {s.name for f in families for s in f.samples}
    assert "capplan_forecast_days_to_exhaustion" in exported
    (rule,) = by_kind("PrometheusRule")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\bcapplan_[a-z0-9_]+", str(expr)))
        assert names and names <= exported, (expr, names - exported)
