"""Tables for reading on a terminal (rich), in humanised units, fitted to the terminal's width.

A table never draws wider than the console: numbers are never wrapped or cut; long names are
cut in the middle (`frontend-7c9…-x2v4q`, both ends stay readable); free text is cut at the end;
and when the columns still do not fit, the last ones are left out with a line saying how many
(`-o wide` shows them all, `-f csv` gives everything)."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Any, TextIO

import polars as pl

from capplan.render.cells import cell

# Wider than this, a name column is cut in the middle; free text (reason, advice) at the end.
NAME_MAX = 40
NAME_MIN = 16
TEXT_MAX = 60
TEXT_MIN = 20
FREE_TEXT = ("reason", "advice", "note", "message", "finding", "value", "why", "runs_out")
# Text columns that may be cut in the middle: names. Any other text (`200m -> 300m (+100m)`,
# `1.5Gi`) holds numbers and is shown whole.
NAME_WORDS = ("workload", "container", "pod", "node", "namespace", "scope", "deployment", "name", "owner",
              "policy", "pool", "file", "taints", "excluded_by", "blocked_by", "rule")
PIPE_WIDTH = 200  # into a file or a pipe without $COLUMNS: wide enough for every table
ELLIPSIS = "…"


def terminal_width(file: TextIO | None = None) -> int:
    """The width to draw for: $COLUMNS when set, else the terminal's, else PIPE_WIDTH."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    stream = file or sys.stdout
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    return PIPE_WIDTH


def make_console(file: TextIO | None = None, width: int | None = None) -> Any:
    """A rich console drawing to `file` (stdout) at `width` (default terminal_width). Colour only
    on a terminal, and never with $NO_COLOR (rich honours it)."""
    from rich.console import Console

    class QuietConsole(Console):
        def on_broken_pipe(self) -> None:
            """The reader is gone (`| head`): stop quietly with exit 0 (rich's default is 1)."""
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0)

    stream = file or sys.stdout
    return QuietConsole(file=stream, width=width or terminal_width(file), soft_wrap=False,
                   force_terminal=None if file is None else False, highlight=False)


def cut_middle(text: str, width: int) -> str:
    """`text` shortened to `width` by an ellipsis in the middle (names stay recognisable)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def cut_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def _header(name: str) -> str:
    return name.replace("_", " ")


def _header_min(name: str) -> int:
    return max(len(w) for w in _header(name).split())


def _plan(frame: pl.DataFrame, texts: dict[str, list[str]], width: int, wide: bool) -> tuple[list[str], dict[str, int]]:
    """Which columns to show and how wide, so that the table fits `width`."""
    sizes: dict[str, int] = {}
    floors: dict[str, int] = {}
    for name, dtype in frame.schema.items():
        natural = max([len(t) for t in texts[name]] + [0])
        head = _header_min(name)
        if dtype == pl.Utf8 and not wide and (name in FREE_TEXT or any(w in name for w in NAME_WORDS)):
            free = name in FREE_TEXT
            cap, floor = (TEXT_MAX, TEXT_MIN) if free else (NAME_MAX, NAME_MIN)
            sizes[name] = max(min(natural, cap), head)
            floors[name] = max(min(natural, floor), head)
        else:  # numbers, flags, dates: never cut or wrapped
            sizes[name] = max(natural, head)
            floors[name] = sizes[name]
    shown = list(frame.columns)
    if wide:
        return shown, sizes

    def total(cols: list[str]) -> int:
        return sum(sizes[c] for c in cols) + 2 * (len(cols) - 1)  # two spaces between columns

    # first cut the text columns toward their floors, widest first; then leave out columns from the right
    while total(shown) > width:
        cuttable = [c for c in shown if sizes[c] > floors[c]]
        if not cuttable:
            break
        c = max(cuttable, key=lambda n: sizes[n] - floors[n])
        sizes[c] = max(floors[c], sizes[c] - (total(shown) - width))
    while len(shown) > 1 and total(shown) > width:
        shown.pop()
    if total(shown) > width and shown:  # a single column wider than the screen
        sizes[shown[0]] = max(width, 1)
    return shown, sizes


# Severity in colour (only on a terminal, never with $NO_COLOR: the console decides).
SEVERITY_STYLES = {"critical": "bold red", "high": "bold red", "warning": "yellow", "medium": "yellow",
                   "ok": "green", "low": "green", "good": "green"}
DEFAULT_STYLES = {"severity": SEVERITY_STYLES.get}


def render_table(frame: pl.DataFrame, title: str | None = None, file: TextIO | None = None, *,
                 wide: bool = False, styles: dict[str, Any] | None = None) -> None:
    """Print a frame as a table fitted to the console width (all columns, uncut, with `wide`).
    `styles` maps a column to a function from its cell text to a rich style (severity colours)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    texts = {n: [cell(n, v) for v in frame[n].to_list()] for n in frame.columns}
    console = make_console(file)
    width = console.width
    shown, sizes = _plan(frame, texts, width, wide)
    if wide:
        width = max(width, sum(sizes[c] for c in shown) + 2 * len(shown))
        console = make_console(file, width=width)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True, show_edge=False)
    numeric = {n for n, t in frame.schema.items() if t.is_numeric()}
    for name in shown:
        header = "\n".join(textwrap.wrap(_header(name), sizes[name], break_long_words=False)) or name
        table.add_column(header, justify="right" if name in numeric else "left", no_wrap=True,
                         overflow="ellipsis", min_width=sizes[name], max_width=sizes[name])
    for i in range(frame.height):
        row = []
        for name in shown:
            text = texts[name][i]
            if len(text) > sizes[name]:
                text = cut_end(text, sizes[name]) if name in FREE_TEXT else cut_middle(text, sizes[name])
            style = {**DEFAULT_STYLES, **(styles or {})}.get(name)
            row.append(Text(text, style=(style(text) or "") if style else ""))  # Text: no markup in values
        table.add_row(*row)
    console.print(table)
    hidden = len(frame.columns) - len(shown)
    if hidden:
        console.print(f"({hidden} more column{'s' if hidden > 1 else ''}: -o wide shows all, -f csv writes all)",
                      style="dim")

