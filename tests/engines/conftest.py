"""One local Spark session for every Spark test (`make test-spark`): starting one takes seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from capplan import lake, store


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from capplan.engines.spark import spark_session

    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false",
                                         "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_lake(sample_db_readonly: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample exported as a lake."""
    directory = tmp_path_factory.mktemp("lake") / "lake"
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        lake.export_lake(con, directory)
    finally:
        con.close()
    return directory


@pytest.fixture(scope="session")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clusters in one store: the bundled sample as `east`, another seed's cluster as `west`."""
    from capplan.importer import import_sample
    from capplan.sample import generate_cluster, write_sample

    root = tmp_path_factory.mktemp("fleet")
    west = root / "west-sample"
    write_sample(generate_cluster(seed=11), west)
    db = root / "fleet.duckdb"
    import_sample(Path(__file__).resolve().parents[2] / "data" / "samples" / "cluster", db, cluster="east")
    import_sample(west, db, cluster="west")
    return db


@pytest.fixture(scope="session")
def fleet_lake(fleet_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fleet-lake") / "lake"
    con = store.open_db(fleet_db, read_only=True)
    try:
        lake.export_lake(con, directory)
    finally:
        con.close()
    return directory
