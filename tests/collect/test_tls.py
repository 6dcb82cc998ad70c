"""TLS: verification on by default, --ca-file for a private CA, --insecure-skip-tls-verify warns."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from capplan.cli import app
from tests import tools
from tests.collect.conftest import WINDOW_START


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[str, str]:
    openssl = tools.one("openssl")
    folder = tmp_path_factory.mktemp("tls")
    key, crt = folder / "key.pem", folder / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(crt), str(key)


def _args(url: str, db: Path) -> list[str]:
    return ["collect", "--prometheus-url", url, "--db", str(db), "--step", "5m", "--retries", "0",
            "--start", WINDOW_START.isoformat(), "--end", (WINDOW_START + timedelta(minutes=30)).isoformat()]


def test_tls_is_verified_by_default(prom, fault_proxy, cert, runner, db: Path) -> None:
    proxy = fault_proxy(upstream=prom.url, tls=cert)
    result = runner.invoke(app, _args(proxy.url, db))
    assert result.exit_code == 3
    assert "TLS verification failed" in result.stderr and "--ca-file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ca_file_trusts_a_private_ca(prom, fault_proxy, cert, runner, db: Path) -> None:
    proxy = fault_proxy(upstream=prom.url, tls=cert)
    result = runner.invoke(app, _args(proxy.url, db) + ["--ca-file", cert[0]])
    assert result.exit_code == 0, result.stderr
    assert "samples" in result.stdout and "warning" not in result.stderr


def test_insecure_skip_verify_works_but_warns_loudly(prom, fault_proxy, cert, runner, db: Path) -> None:
    proxy = fault_proxy(upstream=prom.url, tls=cert)
    result = runner.invoke(app, _args(proxy.url, db) + ["--insecure-skip-tls-verify"])
    assert result.exit_code == 0, result.stderr
    assert "TLS certificate verification is OFF" in result.stderr
