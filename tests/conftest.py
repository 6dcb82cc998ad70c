"""Shared fixtures: the bundled sample imported once per session, and a CLI runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capplan.importer import import_sample
from capplan.sample import SampleCluster, generate_cluster

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"


def run_shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of this pytest run that every pytest-xdist worker of the run shares (the
    workers' base temp directories are `popen-gwN` inside it), so a session artifact that only
    gets read can be built once per run (tests.promharness.cached_tsdb) instead of once per worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def sample_cluster() -> SampleCluster:
    """The generator's source data for the bundled sample (seed 7), for independent checks."""
    return generate_cluster(seed=7)


@pytest.fixture(scope="session")
def sample_db_readonly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample imported into a DuckDB file. Do not write to it: copy it (sample_db)."""
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    import_sample(SAMPLE_DIR, path)
    return path


@pytest.fixture()
def sample_db(sample_db_readonly: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the imported sample."""
    path = tmp_path / "sample.duckdb"
    shutil.copy(sample_db_readonly, path)
    return path


@pytest.fixture()
def runner() -> CliRunner:
    """A typer CLI runner (stderr kept apart from stdout)."""
    return CliRunner()


# --- no silent skips -----------------------------------------------------------------------------
# A skipped test is a failed test: a missing program (tests/tools.py) or a missing file must not
# let `make test` pass without the tests that need it. CAPPLAN_SKIP_INTEGRATION=1 allows skips
# outside CI and lists them at the end; in CI (CI=true) every skip fails regardless.

def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _skips_allowed() -> bool:
    return os.environ.get("CAPPLAN_SKIP_INTEGRATION") == "1" and not _in_ci()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    why = "CI=true" if _in_ci() else "set CAPPLAN_SKIP_INTEGRATION=1 to allow skips"
    report.outcome = "failed"
    report.longrepr = f"skipped, and a skip fails the run ({why}): {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and not _skips_allowed():
        _fail_the_skip(report)


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter files it under "skipped"
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped and not _skips_allowed():
        _fail_the_skip(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and _skips_allowed():
        terminalreporter.section(f"CAPPLAN_SKIP_INTEGRATION=1: {len(skipped)} test(s) skipped, not run")
        for report in skipped:
            terminalreporter.line(f"{report.nodeid}: {_skip_reason(report)}")
