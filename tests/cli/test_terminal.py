"""capplan in a real terminal: commands run on a pseudo-terminal of 80 and 120 columns (the
kernel's window size, no $COLUMNS), and no line they draw is wider than the terminal; the first
screen of `capplan report` is the act-first list."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
ROWS = 40


def run_in_pty(args: list[str], columns: int, rows: int = ROWS) -> tuple[int, list[str]]:
    """Run `capplan ARGS` with its stdout, stderr and stdin on a pty of columns x rows; the
    visible lines (escape sequences removed) and the exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "capplan", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError(f"capplan {' '.join(args)} printed nothing for 120 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=60)
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, text.replace("\r\n", "\n").split("\n")


@pytest.mark.parametrize("columns", [80, 120])
def test_report_opens_with_the_act_first_list_and_fits_the_terminal(sample_db_readonly: Path, columns: int):
    code, lines = run_in_pty(["report", "--db", str(sample_db_readonly)], columns)
    assert code == 0, "\n".join(lines)
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, too_wide
    first_screen = lines[:ROWS]
    assert first_screen[0].startswith("Act on these")
    numbered = [line for line in first_screen if re.match(r"^\s*\d+\. ", line)]
    assert 5 <= len(numbered) <= 10
    # the demo's story: the node at risk first, the command to see it next to it
    assert "node-8" in numbered[0] and "capplan eviction --node node-8" in numbered[0]
    assert any("OOM-killed" in line for line in numbered)
    assert any("cannot roll out" in line for line in numbered)
    assert "Summary" in "\n".join(first_screen)


@pytest.mark.parametrize("columns", [80, 120])
def test_full_report_fits_the_terminal(sample_db_readonly: Path, columns: int):
    code, lines = run_in_pty(["report", "--db", str(sample_db_readonly), "--full"], columns)
    assert code == 0, "\n".join(lines[-20:])
    assert [line for line in lines if len(line) > columns] == []
    assert any(line.startswith("Recommendations") for line in lines)


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", [["nodes"], ["namespaces"], ["cluster"], ["fit", "--cpu", "500m", "--memory", "1Gi"],
                                     ["eviction"], ["recommend"], ["forecast"], ["rollout"]])
def test_every_table_fits_the_terminal(sample_db_readonly: Path, command: list[str], columns: int):
    code, lines = run_in_pty([*command, "--db", str(sample_db_readonly)], columns)
    assert code == 0, "\n".join(lines[-20:])
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, too_wide
    assert len([line for line in lines if line.strip()]) >= 3  # a table was drawn
