"""A bearer token from --token-file or $CAPPLAN_PROMETHEUS_TOKEN reaches Prometheus and nothing
else: not stdout, not stderr (with --debug, on success and on every kind of failure), not the DB
file, not `capplan serve`'s /metrics, /healthz, /readyz or API, not its logs."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.reliability import _prom
from tests.reliability._faultserver import Fault, FaultServer
from tests.reliability._runner import ROOT
from tests.reliability.conftest import STEP, W_END, W_START
from tests.reliability.conftest import collect_args as _collect_args


def collect_args(url: str, db: Path, *extra: str) -> list[str]:
    """The test window cut to its first hour: the token matters here, not the history."""
    args = _collect_args(url, db, *extra)
    args[args.index("--end") + 1] = W_START.replace(hour=1).isoformat()
    return args

TOKEN = "cpt-" + secrets.token_hex(20)
PASSWORD = "pw-" + secrets.token_hex(12)


def _pieces(secret: str) -> list[str]:
    """The secret and every 12-character piece of it: a partial leak counts too."""
    return [secret] + [secret[i:i + 12] for i in range(0, len(secret) - 11, 4)]


def assert_no_secret(label: str, *blobs: str | bytes, secret: str = TOKEN) -> None:
    for blob in blobs:
        text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
        for piece in _pieces(secret):
            assert piece not in text, f"{label}: the secret (or a piece of it) leaked"


def _db_files(db: Path) -> list[bytes]:
    return [p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name) and p.is_file()]


@pytest.fixture()
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _run_debug(forkserver, args: list[str], env: dict | None = None):
    return forkserver.run(["--debug", *args], env=env)


def test_token_file_is_sent_and_never_shown_or_stored(rel_prom, forkserver, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url) as server:
        run = _run_debug(forkserver, collect_args(server.url, db, "--start", W_START.isoformat(),
                                                  "--token-file", str(token_file), "--format", "json"))
        assert run.code == 0, run.err
        api = server.api_seen()
        assert api and all(s.authorization == f"Bearer {TOKEN}" for s in api)  # it was really used
    assert_no_secret("token file run", run.out, run.err, *_db_files(db))


def test_token_from_the_environment_is_sent_and_never_shown_or_stored(rel_prom, forkserver, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url) as server:
        run = _run_debug(forkserver, collect_args(server.url, db, "--start", W_START.isoformat()),
                         env={"CAPPLAN_PROMETHEUS_TOKEN": TOKEN})
        assert run.code == 0, run.err
        assert all(s.authorization == f"Bearer {TOKEN}" for s in server.api_seen())
    assert_no_secret("env token run", run.out, run.err, *_db_files(db))


ERRORS = [
    ("echoing-401", Fault("echo")),  # the error text echoes the Authorization header
    ("500", Fault("status", 500)),
    ("garbage", Fault("garbage")),
    ("stall", Fault("stall", stall_seconds=2)),
    ("mid-run-echo", Fault("echo", after=10)),
]


@pytest.mark.parametrize(("name", "fault"), ERRORS, ids=[e.values[0] if hasattr(e, "values") else e[0] for e in ERRORS])
def test_failures_with_debug_never_show_the_token(name, fault, rel_prom, forkserver, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url, fault) as server:
        run = _run_debug(forkserver, collect_args(server.url, db, "--start", W_START.isoformat(), "--token-file",
                                                  str(token_file), "--retries", "1", "--timeout", "1s"))
        assert run.code in (3, 4), f"{name}: exit {run.code}: {run.err}"
        assert any(s.authorization == f"Bearer {TOKEN}" for s in server.api_seen())
    assert_no_secret(name, run.out, run.err, *(_db_files(db) if db.exists() else []))


def test_password_in_the_url_is_never_shown_or_stored(rel_prom, forkserver, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url) as server:
        url = server.url.replace("http://", f"http://capplan:{PASSWORD}@")
        ok = _run_debug(forkserver, collect_args(url, db, "--start", W_START.isoformat()))
        assert ok.code == 0, ok.err
        server.fault = Fault("status", 500)
        failed = _run_debug(forkserver, collect_args(url, db, "--retries", "0", "--start", W_START.isoformat()))
        assert failed.code == 3
    assert_no_secret("password in URL", ok.out, ok.err, failed.out, failed.err, *_db_files(db), secret=PASSWORD)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.read().decode("utf-8", "replace")


@pytest.mark.slow
def test_serve_with_a_token_shows_it_nowhere(rel_prom, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    port = _prom.free_port()
    with FaultServer(rel_prom.url) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CAPPLAN_DEBUG": ""}
        env.pop("CAPPLAN_PROMETHEUS_TOKEN", None)
        log_out, log_err = tmp_path / "serve.out", tmp_path / "serve.err"
        with open(log_out, "w") as out, open(log_err, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "capplan", "--debug", "serve", "--db", str(db), "--host", "127.0.0.1",
                 "--port", str(port), "--prometheus-url", server.url, "--token-file", str(token_file),
                 "--collect-every", "1h", "--step", STEP, "--since", "6h", "--access-log",
                 "--termination-log", str(tmp_path / "termination-log"),
                 f"--collect-arg=--end={W_END.isoformat()}", "--collect-arg=--chunk=1h"],
                cwd=ROOT, env=env, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 90
            bodies: dict[str, str] = {}
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"capplan serve exited {proc.returncode}: {log_err.read_text()[-2000:]}")
                try:
                    bodies["/healthz"] = _get(f"http://127.0.0.1:{port}/healthz")
                except OSError:
                    time.sleep(0.2)
                    continue
                # wait for the scheduled collection to have used the token and finished
                if server.api_seen() and '"ready":true' in _get(f"http://127.0.0.1:{port}/readyz").replace(" ", ""):
                    break
                time.sleep(0.3)
            assert any(s.authorization == f"Bearer {TOKEN}" for s in server.api_seen()), "serve never collected"
            for path in ("/metrics", "/healthz", "/readyz", "/api/v1/nodes", "/api/v1/report", "/api/v1/collections",
                         "/api/v1/status", "/"):
                bodies[path] = _get(f"http://127.0.0.1:{port}{path}")
            assert "capplan" in bodies["/metrics"]
            assert "\"ready\": true" in bodies["/readyz"] or "\"ready\":true" in bodies["/readyz"], bodies["/readyz"]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert_no_secret("serve", *bodies.values(), log_out.read_text(), log_err.read_text(),
                     *(_db_files(db) if db.exists() else []))
