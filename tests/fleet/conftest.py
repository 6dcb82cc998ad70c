"""Two different clusters in one store, and each alone in a store of its own.

`east` is the bundled sample (seed 7); `west` another run of the generator (seed 11), with
other pods and usage. Both have nodes node-1..node-8 and the same namespaces, so a leak of one cluster's rows
into the other's answer would show."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from capplan.importer import import_sample
from capplan.sample import generate_cluster, write_sample
from tests.conftest import SAMPLE_DIR


@dataclass(frozen=True)
class FleetStores:
    fleet: Path                 # east and west in one store
    alone: dict[str, Path]      # cluster -> a store holding that cluster alone
    folders: dict[str, Path]    # cluster -> its sample folder


@pytest.fixture(scope="session")
def fleet_stores(tmp_path_factory: pytest.TempPathFactory, sample_db_readonly: Path) -> FleetStores:
    root = tmp_path_factory.mktemp("fleet")
    west = root / "west-sample"
    write_sample(generate_cluster(seed=11), west)
    folders = {"east": SAMPLE_DIR, "west": west}
    fleet = root / "fleet.duckdb"
    for name, folder in folders.items():
        import_sample(folder, fleet, cluster=name)
    west_alone = root / "west.duckdb"
    import_sample(west, west_alone)
    return FleetStores(fleet=fleet, alone={"east": sample_db_readonly, "west": west_alone}, folders=folders)


@pytest.fixture()
def fleet_copy(fleet_stores: FleetStores, tmp_path: Path) -> Path:
    """A private, writable copy of the two-cluster store."""
    path = tmp_path / "fleet.duckdb"
    shutil.copy(fleet_stores.fleet, path)
    return path
