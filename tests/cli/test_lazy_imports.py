"""The CLI imports what a command needs when it runs: `capplan --help` and every `capplan CMD --help`
load none of the heavy libraries (the time itself is a `make bench` figure, not a unit test)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.main import get_command

import capplan.cli
from capplan.cli import eviction_cmd, forecast_cmd, recommend_cmd

_PROBE = """
import json, sys
from capplan.cli import app
try:
    app(sys.argv[1:], standalone_mode=True)
except SystemExit:
    pass
heavy = sorted({m for m in sys.modules if m.split('.')[0] in ('duckdb', 'polars', 'numpy', 'scipy', 'pyarrow', 'pydantic') or m.split('.')[0] in ('pyspark', 'py4j', 'sqlglot')
                or m.startswith(('capplan.store', 'capplan.analysis'))})
print(json.dumps(heavy), file=sys.stderr)
"""


def _heavy_modules_after(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


def _commands() -> list[str]:
    return sorted(get_command(capplan.cli.app).commands)  # type: ignore[attr-defined]


def test_root_help_loads_no_heavy_library() -> None:
    assert _heavy_modules_after("--help") == []


@pytest.mark.parametrize("command", _commands())
def test_command_help_loads_no_heavy_library(command: str) -> None:
    assert _heavy_modules_after(command, "--help") == []


def test_a_command_loads_its_analysis_when_it_runs(tmp_path) -> None:
    """The other half of laziness: running `nodes` does import the analysis (so the test above
    is not passing because nothing is ever imported)."""
    probe = _PROBE.replace("except SystemExit", "except BaseException")
    done = subprocess.run([sys.executable, "-c", probe, "nodes", "--db", str(tmp_path / "none.duckdb")],
                          capture_output=True, text=True, timeout=120)
    heavy = json.loads(done.stderr.strip().splitlines()[-1])
    assert "capplan.analysis.nodes_overview" in heavy and "duckdb" in heavy


def test_restated_defaults_match_the_analyses() -> None:
    """The CLI restates a few defaults of the analyses (to keep --help light); they must agree."""
    from capplan.analysis import eviction, forecast, strategies

    assert eviction_cmd.DEFAULT_EVICTION_HARD == eviction.DEFAULT_EVICTION_HARD
    assert eviction_cmd.DEFAULT_EVICTION_SOFT == eviction.DEFAULT_EVICTION_SOFT
    assert eviction_cmd.USAGE_BASES == eviction.USAGE_BASES
    assert forecast_cmd.DEFAULT_MIN_DAYS == forecast.DEFAULT_MIN_DAYS
    assert forecast_cmd.DEFAULT_POOL_LABEL == forecast.DEFAULT_POOL_LABEL
    assert recommend_cmd.STRATEGIES == tuple(strategies.STRATEGIES)
    assert recommend_cmd.DEFAULT_STRATEGY == strategies.DEFAULT_STRATEGY
    from capplan.analysis.strategies import risk

    assert recommend_cmd.RISK_LEVELS == tuple(risk.RISK_LEVELS)
    assert recommend_cmd.DEFAULT_RISK == risk.DEFAULT_RISK
    from capplan.act import patch
    from capplan.cli import patch_cmd

    assert patch_cmd.PATCH_FORMATS == patch.FORMATS


def test_collect_loads_neither_scipy_nor_analyses_nor_report_nor_service(tmp_path) -> None:
    """`capplan collect` runs hourly from cron: its process start must not pay for scipy, the
    analyses, the report or the service (issue 15's next-hour target includes process start).
    Nothing listens on port 1, so the run fails fast after importing the collector (checked too)."""
    probe = _PROBE.replace("except SystemExit", "except BaseException").replace(
        "('duckdb', 'polars', 'numpy', 'scipy', 'pyarrow', 'pydantic')", "('duckdb', 'polars', 'numpy', 'scipy', 'pyarrow', 'pydantic', 'capplan')")
    done = subprocess.run([sys.executable, "-c", probe, "collect", "--prometheus-url", "http://127.0.0.1:1",
                           "--db", str(tmp_path / "x.duckdb"), "--retries", "0"],
                          capture_output=True, text=True, timeout=120)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert "capplan.collect.run" in loaded and "polars" in loaded
    unwanted = [m for m in loaded if m.split(".")[0] in ("scipy", "numpy", "pyarrow", "pydantic")
                or m.startswith(("capplan.analysis", "capplan.report", "capplan.serve"))]
    assert unwanted == []


def test_stored_frames_travel_without_pyarrow(tmp_path) -> None:
    """The store hands frames to DuckDB and back without pyarrow (store.staged_table, frame_of):
    a usage and a spec write and a query in a fresh process leave pyarrow and numpy unloaded, and
    what comes back is what was written."""
    code = f"""
import sys
from datetime import datetime
import polars as pl
from capplan import store
con = store.open_db({str(tmp_path / "t.duckdb")!r})
with store.transaction(con):
    store.write_usage(con, pl.DataFrame({{"namespace": ["a", "a"], "pod": ["p", "p"], "container": ["c", "c"],
        "node": ["n", "n"], "ts": [datetime(2026, 1, 1, 0, 0), datetime(2026, 1, 1, 0, 5)],
        "cpu_cores": [0.25, 0.5], "memory_bytes": [2048.0, 4096.0]}}))
    store.write_spec(con, "workloads", pl.DataFrame({{"namespace": ["a"], "kind": ["Deployment"], "name": ["w"],
        "valid_from": [datetime(2026, 1, 1)], "valid_to": [datetime(2026, 1, 2)], "replicas": [3]}}))
rows = store.frame_of(con, "SELECT u.cpu_mcores, u.memory_kib, s.pod FROM usage_raw u JOIN series s USING (series_id) "
                      "WHERE s.namespace = $ns ORDER BY u.ts", {{"ns": "a"}})
spec = store.frame_of(con, "SELECT name, replicas FROM workloads").rows()
print(rows.rows(), spec, sorted(m for m in ("pyarrow", "numpy") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-600:]
    assert done.stdout.strip() == "[(250, 2, 'p'), (500, 4, 'p')] [('w', 3)] []"
