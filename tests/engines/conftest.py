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
