"""The one-way flow (collect/import -> store -> analysis -> report -> render -> cli/serve) is
written as import-linter contracts in pyproject.toml; `lint-imports` keeps them, and a copy of
the package with one forbidden import breaks them (so the contracts bite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def run_lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_are_kept():
    result = run_lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_an_analysis_importing_the_report_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "capplan", tmp_path / "capplan", ignore=shutil.ignore_patterns("__pycache__"))
    nodes = tmp_path / "capplan" / "analysis" / "nodes.py"
    nodes.write_text(nodes.read_text() + "\nfrom capplan.report.model import Section  # the forbidden direction\n")
    result = run_lint(tmp_path)
    assert result.returncode != 0
    assert "capplan.analysis.nodes -> capplan.report.model" in result.stdout


def test_the_store_importing_an_analysis_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "capplan", tmp_path / "capplan", ignore=shutil.ignore_patterns("__pycache__"))
    store = tmp_path / "capplan" / "store.py"
    store.write_text(store.read_text() + "\nimport capplan.analysis.pods  # the forbidden direction\n")
    result = run_lint(tmp_path)
    assert result.returncode != 0
    assert "capplan.store -> capplan.analysis.pods" in result.stdout
