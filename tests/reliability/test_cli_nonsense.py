"""Every option of every command given nonsense: one line on stderr, the right exit code
(2 usage, 4 bad input, 6 no data), no traceback; `--debug` shows the traceback.

The options are read from the typer app itself, so commands and options added later are covered
the next time this runs: options named below get targeted nonsense and exact exit codes; any
other option gets nonsense by its type.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capplan.cli import app
from capplan.cli.common import DEBUG
from capplan.errors import BadInputError
from capplan.quantity import parse_cpu_cores, parse_duration, parse_memory_bytes

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"
INJECTION = 'a"} or vector(1) #'
DURATION_NONSENSE = [("banana", {2}), ("0s", {2}), ("-5d", {2}), ("99999999999999999999d", {2})]
QUANTITY_NONSENSE = [("lots", {2}), ("-1", {2}), ("1Zi", {2}), ("1e400", {2})]
INT_NONSENSE = [("abc", {2}), ("1.5", {2}), ("", {2})]
FLOAT_NONSENSE = [("abc", {2}), ("", {2})]
# A filter that selects nothing runs the whole analysis (about 1-2 s): one value each.
FILTER_NONSENSE = [(INJECTION, {0, 6})]
MISSING_FILE = "{tmp}/no/such/file"

# Targeted nonsense for options with a known meaning: (value, allowed exit codes).
BY_OPTION: dict[str, list[tuple[str, set[int]]]] = {
    "--format": [("xml", {2}), ("", {2}), ("CSV;rm -rf /", {2})],
    "--db": [("{garbage}", {4}), ("{tmp}", {4}), ("{tmp}/no/such/dir/x.duckdb", {4, 6})],
    # Each runs the analysis before writing: /dev/full (disk full) everywhere, the rest on `nodes`.
    "--output": [("/dev/full", {4})],
    "--namespace": FILTER_NONSENSE,
    "--node": FILTER_NONSENSE,
    "--cpu": QUANTITY_NONSENSE,
    "--memory": QUANTITY_NONSENSE,
    "--eviction-hard": [("lots", {2}), ("150%", {2}), ("-1Gi", {2})],
    "--eviction-soft": [("lots", {2}), ("-5%", {2})],
    "--usage": [("median-ish", {2})],
    "--view": [("everything", {2})],
    "--strategy": [("nonsense", {2})],
    "--priority": [("no-equals-sign", {2}), ("name=high", {2})],
    "--priority-classes": [(MISSING_FILE, {4}), ("{garbage}", {4})],
    "--tolerate": [("::", {2, 4})],
    "--top": INT_NONSENSE + [("0", {2}), ("-3", {2})],
    "--replicas": INT_NONSENSE + [("-3", {2})],
    "--port": INT_NONSENSE + [("70000", {2}), ("-1", {2})],
    # .invalid never resolves (RFC 6761): serve cannot listen there (found by the coverage test below)
    "--host": [("no-such-host.invalid", {2, 4})],
    "--log-level": [("loud", {2})],
    "--concurrency": INT_NONSENSE + [("0", {2}), ("-1", {2})],
    "--prometheus-url": [("not a url", {2, 4}), ("ftp://x", {2, 4})],
    "--token-file": [(MISSING_FILE, {2, 4})],
    "--ca-file": [(MISSING_FILE, {2, 4})],
    "--start": [("yesterday-ish", {2})],
    "--end": [("yesterday-ish", {2})],
}
BY_OPTION["--retries"] = INT_NONSENSE + [("-1", {2})]
BY_OPTION["--max-points"] = INT_NONSENSE + [("0", {2}), ("-1", {2})]
for _opt in ("--window", "--since", "--step", "--spec-step", "--chunk", "--timeout", "--horizon", "--train", "--test", "--max-staleness",
             "--collect-every", "--shutdown-timeout"):
    BY_OPTION[_opt] = DURATION_NONSENSE

# What each command needs so that only the nonsense option is wrong.
BASE_ARGS: dict[str, list[str]] = {
    "fit": ["--cpu", "100m", "--memory", "128Mi"],
    "backtest": ["--train", "7d", "--test", "3d"],
    "import": [str(SAMPLE_DIR)],
    "prune": ["--before", "2000-01-01T00:00:00Z", "--dry-run"],
    "export-lake": ["{tmp}/lake"],
    # commands over manifests: see "patch" and "check" below
    # Port 9 (discard) refuses at once; no retries, so a missed nonsense shows as a quick exit 3.
    "collect": ["--prometheus-url", "http://127.0.0.1:9", "--retries", "0", "--timeout", "5s"],
    # With a schedule, so the collection options are in use (nothing listens on port 9).
    "serve": ["--port", "0", "--host", "127.0.0.1", "--collect-every", "1h", "--prometheus-url", "http://127.0.0.1:9"],
    # A private copy of tests/data/manifests (see MANIFEST_COMMANDS); diff writes nothing, and the
    # data-base folder passes the default policy (warnings only), so a good run exits 0.
    "patch": ["{tmp}/manifests", "-n", "batch", "--format", "diff"],
    "check": ["{tmp}/manifests/data-base"],
}
MANIFESTS = ROOT / "tests" / "data" / "manifests"
MANIFEST_COMMANDS = {"patch", "check"}
# `serve` is a long-running service: these it may accept at start and report through /readyz or
# its scheduled child `capplan collect` (which these tests cover), by design of issue 7.
SERVE_DEFERRED = {"--db", "--termination-log", "--prometheus-url", "--token-file", "--ca-file", "--collect-arg"}
# Commands that run until stopped are tried in a subprocess with a deadline.
LONG_RUNNING = {"serve"}


def _root_command():
    return typer.main.get_command(app)


def _nonsense_for(param) -> list[tuple[str, set[int]]]:
    for opt in param.opts:
        if opt in BY_OPTION:
            return BY_OPTION[opt]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is int:
        return INT_NONSENSE
    if annotation is float:
        return FLOAT_NONSENSE
    if annotation is Path:
        return [(MISSING_FILE, {2, 4, 6})]
    return [("\x01?%;{}", {0, 2, 4, 6})]


def _cases():
    root = _root_command()
    for name, command in root.commands.items():
        for param in command.params:
            if getattr(param, "is_flag", False) or getattr(param, "param_type_name", "") == "argument":
                continue
            if name in LONG_RUNNING and param.opts[0] in SERVE_DEFERRED:
                continue
            nonsense = _nonsense_for(param)
            if name in LONG_RUNNING:
                # A subprocess each (about 1.5 s): the first nonsense per option, and only values
                # that must be refused (a long-running command that accepts a value never ends).
                nonsense = [(v, c) for v, c in nonsense if 0 not in c][:1]
            for i, (value, codes) in enumerate(nonsense):
                marks = [pytest.mark.slow] if name in LONG_RUNNING else []
                yield pytest.param(name, param.opts[0], value, codes, marks=marks, id=f"{name}{param.opts[0]}-{i}")


# Bugs of other issues found by this file (see the issue 9 report); strict=False so a fix passes.
KNOWN_BUGS: dict[str, str] = {
    # Found by this file and fixed since: eviction --priority-classes of a binary file (issue 5,
    # was exit 1); serve --collect-every with a bad --step/--since (issue 7, kept running).
}


def _mark_known(case):
    if case.id in KNOWN_BUGS:
        return pytest.param(*case.values, marks=[*case.marks, pytest.mark.xfail(reason=KNOWN_BUGS[case.id], strict=False)],
                            id=case.id)
    return case


CASES = [_mark_known(c) for c in _cases()]


@pytest.fixture(autouse=True)
def _debug_off():
    """--debug flips a process-wide switch; keep it off between tests."""
    DEBUG["on"] = False
    yield
    DEBUG["on"] = False


@pytest.fixture(scope="module")
def db_template(sample_db_readonly: Path) -> Path:
    return sample_db_readonly


def _fill(value: str, tmp: Path, garbage: Path) -> str:
    return value.replace("{tmp}", str(tmp)).replace("{garbage}", str(garbage))


def _args(command: str, option: str, value: str, db: Path, tmp: Path, garbage: Path) -> list[str]:
    base = [_fill(a, tmp, garbage) for a in BASE_ARGS.get(command, [])]
    if option in base:
        # Drop the base value of the option under test.
        i = base.index(option)
        del base[i:i + 2]
    args = [command, *base]
    if option != "--db":
        args += ["--db", str(db)]
    return args + [option, _fill(value, tmp, garbage)]


def _check(code: int, stderr: str, allowed: set[int], label: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, f"{label}: traceback\n{stderr}"
    assert code in allowed, f"{label}: exit {code}, expected one of {sorted(allowed)}; stderr: {stderr!r}"
    if code != 0:
        assert len(lines) == 1, f"{label}: expected one line on stderr, got {len(lines)}: {stderr!r}"
        assert lines[0].startswith("capplan: "), f"{label}: {lines[0]!r}"
    assert code != 1, f"{label}: internal error: {stderr!r}"


@pytest.mark.parametrize(("command", "option", "value", "allowed"), CASES)
def test_option_given_nonsense(command, option, value, allowed, runner, db_template, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    shutil.copy(db_template, db)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00not a database, not json\xff" * 64)
    before = db.read_bytes()
    if command in MANIFEST_COMMANDS:
        shutil.copytree(MANIFESTS, tmp_path / "manifests")
    args = _args(command, option, value, db, tmp_path, garbage)
    label = f"capplan {' '.join(map(repr, args))}"
    if command == "collect" and 0 in allowed:
        allowed = allowed | {3}  # a valid-but-odd value reaches the (refusing) URL: exit 3 is right
    if command == "check" and 0 in allowed:
        allowed = allowed | {7}  # a valid value: the check ran and found what it reports (exit 7)
    if command in LONG_RUNNING:
        try:
            # A refusal comes within a second or two; 60 s (not 10) so a machine busy with the other
            # tests (pytest-xdist, load 15+: an interpreter start alone took 10-14 s) is not taken for
            # a command that kept running.
            proc = subprocess.run([sys.executable, "-m", "capplan", *args], capture_output=True, text=True,
                                  timeout=60, env={**os.environ, "CAPPLAN_DEBUG": ""})
        except subprocess.TimeoutExpired:
            pytest.fail(f"{label}: kept running instead of refusing the nonsense")
        code, stderr = proc.returncode, proc.stderr
    else:
        result = runner.invoke(app, args)
        code, stderr = result.exit_code, result.stderr
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
            f"{label}: escaped exception {result.exception!r}")
    _check(code, stderr, allowed, label)
    if code != 0 and command != "import":
        assert db.read_bytes() == before, f"{label}: the database changed on a refused command"


@pytest.mark.parametrize("value", ["{tmp}/no/such/dir/out.csv", "{tmp}", "\x01\n"])
def test_nodes_output_and_filter_nonsense(value, runner, db_template, tmp_path) -> None:
    for option in ("--output", "--node") if "{tmp}" in value else ("--node",):
        args = ["nodes", "--db", str(db_template), option, value.replace("{tmp}", str(tmp_path))]
        result = runner.invoke(app, args)
        _check(result.exit_code, result.stderr, {4} if option == "--output" else {0, 4, 6}, " ".join(args))


IMPORT_NONSENSE = [("{tmp}/no/such/path", 4), ("{garbage}", 4), ("{empty_dir}", 4), ("{garbage_csv}", 4)]


@pytest.mark.parametrize(("value", "expected"), IMPORT_NONSENSE, ids=["missing", "binary", "empty-dir", "bad-csv"])
def test_import_path_given_nonsense(value, expected, runner, db_template, tmp_path) -> None:
    db = tmp_path / "db.duckdb"
    shutil.copy(db_template, db)
    before = db.read_bytes()
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 but not really" * 10)
    (tmp_path / "empty").mkdir()
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("namespace,pod,container,timestamp,cpu_cores,memory_bytes\nns,p,c,not-a-time,lots,1Gi\n")
    path = value.replace("{tmp}", str(tmp_path)).replace("{garbage}", str(garbage)).replace(
        "{empty_dir}", str(tmp_path / "empty")).replace("{garbage_csv}", str(bad_csv))
    result = runner.invoke(app, ["import", path, "--db", str(db)])
    _check(result.exit_code, result.stderr, {expected}, f"import {path}")
    assert db.read_bytes() == before


def test_unknown_option_and_missing_argument_are_one_line_exit_2(runner) -> None:
    for args in (["nodes", "--bogus"], ["import"], ["nodes", "--window"], ["no-such-command"]):
        result = runner.invoke(app, args)
        _check(result.exit_code, result.stderr, {2}, " ".join(args))


def test_debug_shows_the_traceback(runner, db_template) -> None:
    quiet = runner.invoke(app, ["nodes", "--db", str(db_template), "--window", "banana"])
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr
    loud = runner.invoke(app, ["--debug", "nodes", "--db", str(db_template), "--window", "banana"])
    assert loud.exit_code == 2
    assert "Traceback (most recent call last)" in loud.stderr
    assert "UsageError" in loud.stderr and "banana" in loud.stderr
    # The last line is still the one-line message scripts read.
    assert loud.stderr.strip().splitlines()[-1].startswith("capplan: ")


@pytest.mark.slow
def test_debug_in_a_real_process_shows_the_traceback(tmp_path) -> None:
    env = {**os.environ, "CAPPLAN_DEBUG": ""}
    args = [sys.executable, "-m", "capplan", "nodes", "--db", str(tmp_path / "none.duckdb")]
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert quiet.returncode == 6 and quiet.stderr.count("\n") == 1 and "Traceback" not in quiet.stderr
    loud = subprocess.run(args[:3] + ["--debug"] + args[3:], capture_output=True, text=True, env=env, timeout=60)
    assert loud.returncode == 6 and "Traceback (most recent call last)" in loud.stderr and "NoDataError" in loud.stderr


def test_every_option_of_every_command_gets_nonsense() -> None:
    """A new command or option cannot slip past this file: each option that takes a value (all but
    flags, arguments and serve's deferred ones) has at least one case above."""
    root = _root_command()
    options = {(name, p.opts[0]) for name, command in root.commands.items() for p in command.params
               if not getattr(p, "is_flag", False) and p.param_type_name == "option"
               and not (name in LONG_RUNNING and p.opts[0] in SERVE_DEFERRED)}
    covered = {(c.values[0], c.values[1]) for c in CASES}
    assert options, "no command options found"
    assert options - covered == set()


# --- fuzzed values through the real command line (hypothesis) ----------------------------------


CLI_EXAMPLES = 60
_garbage = st.one_of(st.text(max_size=20), st.text(alphabet="0123456789.eEKMGTPimnu+- ", max_size=10))


def _invalid(parse, text: str) -> bool:
    try:
        parse(text)
    except BadInputError:
        return True
    return False


@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(text=_garbage.filter(lambda t: _invalid(parse_cpu_cores, t) and _invalid(parse_memory_bytes, t)
                            and not t.startswith("-")))
def test_fuzzed_quantity_on_the_command_line_is_exit_2(text, runner, db_template) -> None:
    for option in ("--cpu", "--memory"):
        args = ["fit", "--cpu", "100m", "--memory", "128Mi", "--db", str(db_template), option, text]
        result = runner.invoke(app, args)
        _check(result.exit_code, result.stderr, {2}, f"fit {option} {text!r}")


@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(text=_garbage.filter(lambda t: _invalid(parse_duration, t) and not t.startswith("-")))
def test_fuzzed_duration_on_the_command_line_is_exit_2(text, runner, db_template) -> None:
    result = runner.invoke(app, ["nodes", "--db", str(db_template), "--window", text])
    _check(result.exit_code, result.stderr, {2}, f"nodes --window {text!r}")
