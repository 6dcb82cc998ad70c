"""`--engine`/`--lake` without Spark running: wrong combinations are usage (exit 2), a missing
pyspark or Java is one line naming what to install (exit 2), a folder that is no lake or a lake
whose export did not finish is bad input (exit 4), all before any Spark session starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capplan import lake, store
from capplan.cli import app


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "--engine spark needs --lake DIR"),
    (["--lake", "/tmp/somewhere"], "--lake is read by --engine spark only"),
    (["--engine", "flink", "--lake", "/tmp/x"], "--engine must be one of duckdb, spark"),
])
@pytest.mark.parametrize("command", ["recommend", "nodes"])
def test_wrong_engine_options_are_usage(command, args, message, runner, sample_db_readonly: Path):
    result = runner.invoke(app, [command, "--db", str(sample_db_readonly), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def _exported(db: Path, directory: Path) -> Path:
    con = store.open_db(db, read_only=True)
    try:
        lake.export_lake(con, directory)
    finally:
        con.close()
    return directory


def _capplan(args: list[str], env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{prelude}\nimport sys\nfrom capplan.cli import main\nsys.argv = ['capplan', *sys.argv[1:]]\nmain()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_without_pyspark_the_message_names_the_extra(sample_db_readonly: Path, tmp_path: Path):
    directory = _exported(sample_db_readonly, tmp_path / "lake")
    done = _capplan(["recommend", "--db", str(sample_db_readonly), "--engine", "spark", "--lake", str(directory)],
                    dict(os.environ), prelude="import sys; sys.modules['pyspark'] = None  # as if not installed")
    assert done.returncode == 2
    assert done.stderr == "capplan: --engine spark needs pyspark: pip install 'capplan[spark]'\n"


@pytest.mark.spark  # the check comes after pyspark's: needs the spark extra
def test_without_java_the_message_names_the_package(sample_db_readonly: Path, tmp_path: Path):
    directory = _exported(sample_db_readonly, tmp_path / "lake")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"} | {"PATH": str(tmp_path)}
    done = _capplan(["nodes", "--db", str(sample_db_readonly), "--engine", "spark", "--lake", str(directory)], env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "apt-get install openjdk-17-jre-headless" in done.stderr


@pytest.mark.spark  # the check comes after pyspark's: needs the spark extra
def test_a_folder_without_a_lake_and_an_unfinished_lake_are_refused(runner, sample_db_readonly: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--engine", "spark", "--lake", str(empty)])
    assert result.exit_code == 4
    assert f"{empty} holds no capplan lake (no manifest.json): run `capplan export-lake {empty}` first" in result.stderr
    directory = _exported(sample_db_readonly, tmp_path / "lake")
    manifest = json.loads((directory / lake.MANIFEST).read_text())
    (directory / lake.MANIFEST).write_text(json.dumps({**manifest, "finished": False}))
    result = runner.invoke(app, ["recommend", "--db", str(sample_db_readonly), "--engine", "spark", "--lake", str(directory)])
    assert result.exit_code == 4
    assert "its last export did not finish" in result.stderr
