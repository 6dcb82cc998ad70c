"""The CLI surface of CONTRACT.md: commands listed, output formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from capplan.cli import app

CONTRACT_COMMANDS = ["collect", "import", "report", "nodes", "namespaces", "fit", "eviction", "recommend",
                     "backtest", "forecast", "serve"]
NODES_COLUMNS = (
    "node,cpu_capacity_cores,cpu_allocatable_cores,cpu_requests_cores,cpu_limits_cores,cpu_usage_p95_cores,"
    "memory_capacity_bytes,memory_allocatable_bytes,memory_requests_bytes,memory_limits_bytes,"
    "memory_usage_p95_bytes,pods,pods_allocatable,cpu_request_ratio,cpu_limit_ratio,memory_request_ratio,"
    "memory_limit_ratio,cpu_headroom_cores,memory_headroom_bytes,reserved_ok"
).split(",")


def test_help_lists_every_contract_command(runner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in CONTRACT_COMMANDS:
        assert command in result.stdout


def test_nodes_csv_has_the_contract_columns_and_integer_bytes(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert set(NODES_COLUMNS) <= set(rows[0])
    assert len(rows) == 8
    for row in rows:
        assert row["memory_allocatable_bytes"].isdigit()
        assert row["reserved_ok"] in ("true", "false")


def test_json_has_the_same_keys_as_csv(runner, sample_db_readonly: Path) -> None:
    as_csv = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "csv"]).stdout
    as_json = json.loads(runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "json"]).stdout)
    assert list(as_json[0]) == next(csv.reader(io.StringIO(as_csv)))


def test_output_file(runner, sample_db_readonly: Path, tmp_path: Path) -> None:
    out = tmp_path / "nodes.csv"
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "-f", "csv", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text().startswith("node,")


def test_missing_database_is_exit_6(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 6
    assert "no database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_empty_database_is_exit_6(runner, tmp_path: Path) -> None:
    from capplan import store

    store.open_db(tmp_path / "empty.duckdb").close()
    result = runner.invoke(app, ["nodes", "--db", str(tmp_path / "empty.duckdb")])
    assert result.exit_code == 6


def test_wrong_format_is_usage_exit_2(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--format", "xml"])
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_bad_window_is_exit_2_naming_the_value(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(sample_db_readonly), "--window", "fortnight"])
    assert result.exit_code == 2  # an option value that makes no sense is wrong usage (issue 13)
    assert "fortnight" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_of_a_missing_path_is_exit_4(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nope"), "--db", str(tmp_path / "db.duckdb")])
    assert result.exit_code == 4
    assert not (tmp_path / "db.duckdb").exists()


def test_report_opens_act_first_and_full_prints_every_section(runner, sample_db_readonly: Path) -> None:
    result = runner.invoke(app, ["report", "--db", str(sample_db_readonly)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Act on these") and "node-8" in result.stdout and "Summary" in result.stdout
    assert "Cluster" not in result.stdout  # the sections wait for --full
    full = runner.invoke(app, ["report", "--db", str(sample_db_readonly), "--full"])
    assert full.exit_code == 0, full.stderr
    assert full.stdout.startswith("Act on these")
    for title in ("Cluster", "Nodes", "N-1", "Eviction advice", "Recommendations", "Forecast", "Rollout headroom"):
        assert title in full.stdout, title


def _says(entry, argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """What `entry` (capplan.cli.main, or the whole app) prints and exits with for `argv`."""
    import sys

    from capplan.cli.common import DEBUG

    monkeypatch.setitem(DEBUG, "on", False)  # `--debug` sets it for the process: not for the tests after
    monkeypatch.setattr(sys, "argv", ["capplan", *argv])
    code = 0
    try:
        entry()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_entry_point_runs_one_command_as_the_whole_app_does(monkeypatch, capsys) -> None:
    """The entry point builds only the command it runs (capplan.cli.main): every command's help, a
    usage error, root options before the command and an unknown command read exactly as from the
    whole app, and the whole app is intact afterwards."""
    from typer.main import get_command

    from capplan.cli import invoke as main

    commands = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert len(commands) >= len(CONTRACT_COMMANDS)
    for argv in [*([name, "--help"] for name in commands), ["recommend", "--bogus"], ["--debug", "nodes", "--help"],
                 ["nosuch"], ["--help"], ["fit", "--cpu", "x", "--memory", "1Gi", "--db", "/nonexistent/db"]]:
        assert _says(main, argv, monkeypatch, capsys) == _says(app, argv, monkeypatch, capsys), argv
        assert sorted(get_command(app).commands) == commands  # type: ignore[attr-defined]


def test_the_entry_point_builds_only_the_command_it_runs(monkeypatch, capsys) -> None:
    import typer.main

    built: list[str] = []
    real = typer.main.get_command_from_info

    def counting(command_info, **kwargs):
        built.append(command_info.callback.__name__)
        return real(command_info, **kwargs)

    monkeypatch.setattr(typer.main, "get_command_from_info", counting)
    from capplan.cli import invoke as main

    assert _says(main, ["recommend", "--help"], monkeypatch, capsys)[0] == 0
    assert built == ["recommend"]
    built.clear()
    assert _says(main, ["--help"], monkeypatch, capsys)[0] == 0
    assert len(built) == len(app.registered_commands) > 10


_ENTRY = """
import atexit, sys
class Teardown:
    def __del__(self):
        print("module teardown", file=sys.stderr)
kept = Teardown()  # a module global: freed when Python tears the modules down
atexit.register(lambda: print("atexit ran", file=sys.stderr))
from capplan.cli import app, main
entry = main if sys.argv[1] == "main" else app
sys.argv = ["capplan", *sys.argv[2:]]
entry()
"""


def _run_entry(entry: str, *argv: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _ENTRY, entry, *argv], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_the_entry_point_ends_without_module_teardown_with_the_same_code_and_output(tmp_path: Path,
                                                                                     sample_db_readonly: Path) -> None:
    """`capplan` (capplan.cli.main) exits with the command's code, output and files as the app
    does, runs the atexit handlers, and skips Python's teardown of the modules (exit_now)."""
    out = tmp_path / "rec.csv"
    for argv in (["nodes", "--db", str(sample_db_readonly), "-f", "csv"], ["nodes", "--db", str(tmp_path / "none.duckdb")],
                 ["recommend", "--db", str(sample_db_readonly), "-f", "csv", "-o", str(out)], ["--version"], ["nosuch"]):
        code, stdout, stderr = _run_entry("main", *argv)
        written = out.read_text() if out.exists() else None
        out.unlink(missing_ok=True)
        want_code, want_stdout, want_stderr = _run_entry("app", *argv)
        assert (code, stdout) == (want_code, want_stdout), argv
        assert written == (out.read_text() if out.exists() else None), argv
        out.unlink(missing_ok=True)
        assert want_stderr.endswith("atexit ran\nmodule teardown\n"), argv
        assert stderr == want_stderr.removesuffix("module teardown\n"), argv
        if argv[0] == "recommend":
            assert written is not None and written.startswith("namespace,")
