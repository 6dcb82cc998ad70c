"""TLS: an HTTPS proxy with a self-signed certificate (made by the `openssl` CLI) in front of a
real Prometheus is refused by default, accepted with --ca-file, accepted with a loud warning
under --insecure-skip-tls-verify; a certificate for another host is refused even with --ca-file;
and the token is never sent over a connection that failed verification."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import tools
from tests.reliability._faultserver import FaultServer
from tests.reliability._runner import snapshot
from tests.reliability.conftest import W_START, collect_args
from tests.reliability.test_secrets import TOKEN, assert_no_secret

HALF_HOUR = (W_START.replace(minute=30)).isoformat()


def _cert(folder: Path, name: str, san: str) -> tuple[str, str]:
    key, crt = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run([tools.one("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return str(crt), str(key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[str, str]]:
    tools.require("openssl")
    folder = tmp_path_factory.mktemp("tls")
    return {"good": _cert(folder, "capplan-test-ca", "IP:127.0.0.1"),
            "other-host": _cert(folder, "prometheus.example", "DNS:prometheus.example")}


@pytest.fixture()
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


def _args(url: str, db: Path, token_file: Path, *extra: str) -> list[str]:
    args = collect_args(url, db, "--start", W_START.isoformat(), "--retries", "0", "--token-file", str(token_file),
                        *extra)
    args[args.index("--end") + 1] = HALF_HOUR
    return args


def test_self_signed_is_refused_by_default(rel_prom, forkserver, certs, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url, tls=certs["good"]) as proxy:
        run = forkserver.run(_args(proxy.url, db, token_file))
        assert run.code == 3, run.err
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and "TLS" in lines[0] and proxy.url in lines[0] and "--ca-file" in lines[0]
        assert proxy.api_seen() == []  # no request, so no token, crossed the unverified connection
    assert not db.exists()
    assert_no_secret("refused TLS", run.out, run.err)


def test_ca_file_accepts_the_private_ca(rel_prom, forkserver, certs, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url, tls=certs["good"]) as proxy:
        run = forkserver.run(_args(proxy.url, db, token_file, "--ca-file", certs["good"][0]))
        assert run.code == 0, run.err
        assert run.err.strip() == ""
        assert all(s.authorization == f"Bearer {TOKEN}" for s in proxy.api_seen())
    assert snapshot(db)["usage"]


def test_insecure_skip_verify_works_with_a_loud_warning(rel_prom, forkserver, certs, token_file, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url, tls=certs["other-host"]) as proxy:
        run = forkserver.run(_args(proxy.url, db, token_file, "--insecure-skip-tls-verify"))
        assert run.code == 0, run.err
    warning = run.err.strip().splitlines()
    assert len(warning) == 1 and "warning" in warning[0].lower() and "TLS" in warning[0]
    assert snapshot(db)["usage"]
    assert_no_secret("insecure run", run.out, run.err)


def test_a_certificate_for_another_host_is_refused_even_with_its_ca(rel_prom, forkserver, certs, token_file,
                                                                     tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    with FaultServer(rel_prom.url, tls=certs["other-host"]) as proxy:
        run = forkserver.run(_args(proxy.url, db, token_file, "--ca-file", certs["other-host"][0]))
        assert run.code == 3, run.err
        assert "TLS" in run.err and len(run.err.strip().splitlines()) == 1
        assert proxy.api_seen() == []
    assert not db.exists()


def test_a_missing_ca_file_is_a_usage_error(rel_prom, forkserver, token_file, tmp_path) -> None:
    run = forkserver.run(_args("https://127.0.0.1:9", tmp_path / "db.duckdb", token_file, "--ca-file",
                               str(tmp_path / "nope.pem")))
    assert run.code == 2 and len(run.err.strip().splitlines()) == 1 and "--ca-file" in run.err
