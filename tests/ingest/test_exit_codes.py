"""The exit-code tables of docs/reference.md (the one place they are written): every command is in them, and for every
command a senseless option value exits 2, wrong content exits 4 and (where it reads the
database) an empty one exits 6, each with one line on stderr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from capplan.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reference.md"
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"

# command: (args giving 2, args giving 4, args giving 6 or None); {db} is the sample database,
# {garbage} a file that is no database, {bad_json} a file that is no JSON, {none} a missing database.
CASES: dict[str, tuple[list[str], list[str] | None, list[str] | None]] = {
    "collect": (["--prometheus-url", "http://127.0.0.1:9", "--db", "{db}", "--since", "soon"],
                ["--prometheus-url", "http://127.0.0.1:9", "--db", "{garbage}"], None),
    "import": (["--db", "{db}"], ["{bad_csv}", "--db", "{db}"], None),
    "report": (["--db", "{db}", "--top", "0"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "nodes": (["--db", "{db}", "--window", "abc"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "namespaces": (["--db", "{db}", "--window", "abc"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "fit": (["--db", "{db}", "--cpu", "-1"], ["--db", "{garbage}", "--cpu", "1"], ["--db", "{none}", "--cpu", "1"]),
    "cluster": (["--db", "{db}", "--window", "abc"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "eviction": (["--db", "{db}", "--priority", "garbage"], ["--db", "{db}", "--priority-classes", "{bad_json}"],
                 ["--db", "{none}"]),
    "recommend": (["--db", "{db}", "--min-history", "soon"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "backtest": (["--db", "{db}", "--train", "soon"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "forecast": (["--db", "{db}", "--horizon", "soon"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "rollout": (["--db", "{db}", "--window", "abc"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "serve": (["--db", "{db}", "--port", "0", "--window", "abc"], None, None),
    "patch": (["{bad_yaml}", "--db", "{db}", "--format", "bogus"], ["{bad_yaml}", "--db", "{db}"],
              ["{good_yaml}", "--db", "{none}"]),
    "prune": (["--db", "{db}", "--after", "soon"], ["--db", "{garbage}", "--after", "2026-01-01"],
              ["--db", "{none}", "--after", "2026-01-01"]),
    "whatif": (["--db", "{db}", "--apply", "bogus"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "resize-plan": (["--db", "{db}", "--recent", "soon"], ["--db", "{garbage}"], ["--db", "{none}"]),
    "check": (["{good_yaml}", "--db", "{db}", "--window", "abc"], ["{bad_yaml}", "--static"], None),
    "export-lake": (["--db", "{db}"], ["{bad_json}", "--db", "{db}"], ["{none}-lake", "--db", "{none}"]),
}


def _commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_every_command_is_in_the_table_and_in_this_test() -> None:
    text = DOC.read_text().split("### Per command", 1)[1].split("## Commands", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", text, flags=re.M))
    assert set(_commands()) <= documented, set(_commands()) - documented
    assert set(_commands()) <= set(CASES), set(_commands()) - set(CASES)


@pytest.fixture()
def files(sample_db, tmp_path) -> dict[str, str]:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"\x00not a database\xff" * 64)
    bad_json = tmp_path / "classes.json"
    bad_json.write_text("{not json")
    bad_csv = tmp_path / "usage.csv"
    bad_csv.write_text("namespace,pod,container,timestamp,cpu_cores,memory_bytes\nns,p,c,2026-11-10T00:00:00Z,-1,1\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("kind: Deployment\n  metadata: [unclosed\n")
    good_yaml = tmp_path / "good.yaml"
    good_yaml.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: web}\n"
                         "spec: {template: {spec: {containers: [{name: app, image: x}]}}}\n")
    return {"db": str(sample_db), "garbage": str(garbage), "bad_json": str(bad_json), "bad_csv": str(bad_csv),
            "bad_yaml": str(bad_yaml), "good_yaml": str(good_yaml), "none": str(tmp_path / "none.duckdb")}


@pytest.mark.parametrize("command", sorted(CASES))
def test_exit_codes_of(command, files, runner) -> None:
    if command not in _commands():
        pytest.fail(f"{command} is in this test but not a command (remove it here and in docs/reference.md)")
    for code, args in zip((2, 4, 6), CASES[command], strict=True):
        if args is None:
            continue
        argv = [command, *(a.format(**files) for a in args)]
        result = runner.invoke(app, argv)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == code, (argv, result.exit_code, result.stderr)
        assert lines and lines[-1].startswith("capplan: ") and "Traceback" not in result.stderr, result.stderr
