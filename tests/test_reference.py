"""docs/reference.md against the CLI itself: every command `capplan --help` lists has a section,
each section lists exactly the options the command's own `--help` shows, the documented CSV
columns are the header the command writes on the bundled sample, every exit code capplan raises
is documented, and the README points only at files inside the repository.

The commands run in-process (typer's CliRunner: the same app, argument parsing and output as the
`capplan` program, without starting ~30 interpreters); the real process is tested by
tests/cli/test_terminal.py, tests/reliability/ and tests/test_service.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import capplan.errors
from capplan.cli import app

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
# What each command with CSV output needs besides --db to write its header on the sample.
CSV_ARGS = {"fit": ["--cpu", "500m", "--memory", "1Gi"], "backtest": ["--strategy", "simple", "--train", "7d", "--test", "7d"]}


def help_text(*command: str) -> str:
    done = CliRunner().invoke(app, [*command, "--help"], prog_name="capplan",
                              env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    assert done.exit_code == 0, done.stderr
    return done.stdout


def help_options(text: str) -> set[str]:
    """Long options of a help screen: the first word of each row of its option panels."""
    return {m.group(1) for m in re.finditer(r"^│\s+(?:\*\s+)?(--[a-z0-9-]+)", text, re.M)} - {"--help"}


def help_commands(text: str) -> list[str]:
    return re.findall(r"^│ ([a-z][a-z0-9-]*)\s", text, re.M)


def sections() -> dict[str, str]:
    """`capplan CMD` -> the text of its section in the reference."""
    parts = re.split(r"^### `capplan ([a-z0-9-]+)`\s*$", REFERENCE.read_text(), flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def documented_options(body: str) -> set[str]:
    return set(re.findall(r"^\| `(--[a-z0-9-]+)`", body, re.M))


ROOT_HELP = help_text()
COMMANDS = help_commands(ROOT_HELP)


def test_every_command_has_a_section_and_no_section_is_stale():
    assert len(COMMANDS) >= 10  # the parse found the command panel
    assert sorted(sections()) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_section_lists_the_options_of_the_commands_help(command: str):
    shown = help_options(help_text(command))
    assert shown, f"no options parsed from `capplan {command} --help`"
    assert documented_options(sections()[command]) == shown


@pytest.mark.parametrize("command", sorted(c for c in ("nodes", "namespaces", "cluster", "fit", "eviction", "recommend",
                                                       "backtest", "forecast", "rollout", "whatif")))
def test_the_documented_columns_are_the_csv_header(command: str, sample_db_readonly: Path):
    match = re.search(r"^Columns \(`-f csv`, in this order\): (.*)$", sections()[command], re.M)
    assert match, f"the section of {command} documents no columns"
    documented = re.findall(r"`([a-z0-9_]+)`", match.group(1))
    done = CliRunner().invoke(app, [command, *CSV_ARGS.get(command, []), "--db", str(sample_db_readonly), "-f", "csv"])
    assert done.exit_code == 0, done.stderr
    assert documented == done.stdout.splitlines()[0].split(",")


def test_every_exit_code_is_documented():
    table = re.search(r"^## Exit codes\n(.*?)^## ", REFERENCE.read_text(), re.M | re.S).group(1)
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}
    raised = {cls.exit_code for cls in vars(capplan.errors).values()
              if isinstance(cls, type) and issubclass(cls, capplan.errors.CapplanError)}
    assert raised <= documented and {0, 1, 2, 3, 4, 5, 6} <= documented


def test_the_readme_links_only_to_files_in_the_repository():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)", text)
    paths = [p for p in re.findall(r"`([\w./-]+\.(?:md|yaml|sql|py|parquet|json))`", text)]
    assert "docs/reference.md" in links + paths
    for path in links + paths:
        assert not path.startswith(("..", "/")), f"README points outside the repository: {path}"
        if not path.startswith("http"):
            assert (ROOT / path).exists(), f"README points at a missing file: {path}"
