"""Per-command allocator settings (capplan.cli.allocators): the command's process gives polars'
freed memory back at once where that lowers its peak, and a user's own setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import capplan.cli
from capplan.cli import allocators
from capplan.cli.common import DEBUG

MB = 10**6
# A process that sets `command`'s allocator as the CLI does, then holds and frees 400 MB of polars
# memory: its RSS before, while held, and after the free.
_PROBE = """
import json, sys
from capplan.cli import allocators
allocators.configure(sys.argv[1])
import polars as pl
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
values = pl.int_range(0, 50_000_000, eager=True)
held = rss()
del values
print(json.dumps({"before": before, "held": held, "after": rss()}))
"""


def _rss_around_a_free(command: str, env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, command], capture_output=True, text=True, timeout=120,
                          env=env, check=True)
    return json.loads(done.stdout)


def _env_without_setting() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in (allocators.JEMALLOC_CONF_ENV, allocators.USER_CONF_ENV)}


def test_recommend_gives_freed_memory_back_at_once_and_report_keeps_the_default() -> None:
    env = _env_without_setting()
    returned = _rss_around_a_free("recommend", env)
    kept = _rss_around_a_free("report", env)
    for seen in (returned, kept):  # 50 M int64s are 400 MB: the probe did hold them
        assert seen["held"] - seen["before"] >= 380 * MB
    assert returned["after"] - returned["before"] < 50 * MB
    # polars' own setting keeps freed pages for 0.5 s: the 400 MB still count
    assert kept["after"] - kept["before"] >= 380 * MB


def test_a_users_own_setting_wins() -> None:
    env = {**_env_without_setting(), allocators.JEMALLOC_CONF_ENV: "dirty_decay_ms:10000,muzzy_decay_ms:10000"}
    seen = _rss_around_a_free("recommend", env)
    assert seen["after"] - seen["before"] >= 380 * MB


@pytest.mark.parametrize(("argv", "expected"), [
    (["recommend", "--help"], allocators.RETURN_AT_ONCE),
    (["--debug", "serve", "--help"], allocators.RETURN_AT_ONCE),
    (["collect", "--help"], allocators.JEMALLOC_CONF_BY_COMMAND["collect"]),
    (["report", "--help"], None),
    (["--help"], None),
])
def test_the_cli_sets_the_commands_setting_before_it_runs(monkeypatch, argv: list[str], expected: str | None) -> None:
    monkeypatch.delenv(allocators.JEMALLOC_CONF_ENV, raising=False)
    monkeypatch.delenv(allocators.USER_CONF_ENV, raising=False)
    monkeypatch.setitem(DEBUG, "on", DEBUG.get("on", False))  # --debug sets it for the process
    monkeypatch.setattr(sys, "argv", ["capplan", *argv])
    with pytest.raises(SystemExit) as done:
        capplan.cli.invoke()
    assert done.value.code == 0
    assert os.environ.get(allocators.JEMALLOC_CONF_ENV) == expected


def _polars_exports(monkeypatch) -> None:
    """What `import polars` does to the environment (polars/__init__.py): its own setting in front
    of the value there, exported to the processes started after."""
    current = os.environ.get(allocators.JEMALLOC_CONF_ENV)
    own = allocators.POLARS_OWN_CONFS[0]
    monkeypatch.setenv(allocators.JEMALLOC_CONF_ENV, own + ("," + current if current else ""))


@pytest.mark.parametrize(("command", "expected"), [
    ("collect", allocators.JEMALLOC_CONF_BY_COMMAND["collect"]),
    ("recommend", allocators.RETURN_AT_ONCE),
    ("report", None),
])
def test_a_child_capplan_takes_its_own_setting_not_its_parents(monkeypatch, command: str, expected: str | None) -> None:
    """`serve` runs `capplan collect` as a child process, which inherits serve's setting with polars'
    in front: collect takes its own (returning freed pages at once cost the collector a page fault on
    every reuse), and a command without one gets polars' own."""
    monkeypatch.delenv(allocators.JEMALLOC_CONF_ENV, raising=False)
    monkeypatch.delenv(allocators.USER_CONF_ENV, raising=False)
    allocators.configure("serve")
    _polars_exports(monkeypatch)
    assert allocators.configure(command) == expected
    assert os.environ.get(allocators.JEMALLOC_CONF_ENV) == expected


def test_a_parent_that_imported_polars_is_not_a_user(monkeypatch) -> None:
    """A process that imported polars and set nothing (the bench, a script) starts `capplan
    recommend`: polars' exported value is not the user's."""
    monkeypatch.delenv(allocators.JEMALLOC_CONF_ENV, raising=False)
    monkeypatch.delenv(allocators.USER_CONF_ENV, raising=False)
    _polars_exports(monkeypatch)
    assert allocators.configure("recommend") == allocators.RETURN_AT_ONCE


def test_a_users_setting_stays_in_a_child_capplan_too(monkeypatch) -> None:
    monkeypatch.setenv(allocators.JEMALLOC_CONF_ENV, "narenas:1")
    monkeypatch.delenv(allocators.USER_CONF_ENV, raising=False)
    assert allocators.configure("serve") == "narenas:1"
    _polars_exports(monkeypatch)
    assert allocators.configure("collect") == "narenas:1"
    assert allocators.configure("report") == "narenas:1"
