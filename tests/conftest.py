"""Shared fixtures: the bundled sample imported once per session, and a CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capplan.importer import import_sample
from capplan.sample import SampleCluster, generate_cluster

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"
SHARED = ROOT.parent / "shared"


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
