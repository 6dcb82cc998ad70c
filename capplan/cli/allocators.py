"""How quickly a command's process gives freed memory back to the system, set per command before
polars loads: polars' bundled jemalloc reads `_RJEM_MALLOC_CONF` once, at its first allocation.

jemalloc keeps freed pages ("dirty") for `dirty_decay_ms` (10 s by default) to reuse them without a
page fault. That is the right trade for a command that allocates and frees the same sizes over and
over, and the wrong one where a command's stages each build large frames of their own: the pages
one stage freed still count in RSS while the next stage allocates more, so the peak is a sum of
stages. Each setting below was chosen by measuring both ways (bench/RESULTS.md, section AL). A
value the user exported is kept.
"""

from __future__ import annotations

import os

JEMALLOC_CONF_ENV = "_RJEM_MALLOC_CONF"  # tikv-jemallocator's prefix, as polars builds it
RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"

JEMALLOC_CONF_BY_COMMAND: dict[str, str] = {
    # The History's frames (per series, per interval, the CPU histogram) and then the strategy's:
    # on the bench's L year file, `recommend --window 90d` peaked at 415-431 MiB (auto) and 405-415
    # (vpa) with the default, 369-382 and 337-347 at once, in the same CPU time; at M 279-290 and
    # 253-256 against 277-284 and 250: L/M in the bench 1.35x and 1.42x (issue 14's 1.5x; 1.58x and
    # 1.78x before).
    "recommend": RETURN_AT_ONCE,
    # One answer after another in one process: with the default, the frames of one analysis still
    # held RSS while the next one ran and the pod's peak was the sum of several; returned at once,
    # the peak is the largest analysis (docs/serve.md sizes the pod from it).
    "serve": RETURN_AT_ONCE,
    # A collection frees a chunk's frames every few seconds, so with the default they piled up in RSS
    # (bench/collect_bench.py's M first run: 880 -> 786 MiB peak over 3 days with immediate return).
    # Returning them at once then cost a page fault on every reuse: on the 7-day M first run 13 s of
    # system CPU (44.6 s in all, 548 MiB peak) against 3.3 s after 1 s (34.9 s, 594 MiB).
    "collect": "dirty_decay_ms:1000,muzzy_decay_ms:0",
    # Not listed, the default: `report` at L freed at once took 2 s more system CPU (5.6-5.8 s
    # against 3.5-3.8 s) for 0-20 MiB less peak RSS; `forecast --window 365d` 1.2 s more for 10 MiB,
    # `eviction` the same time for 5 MiB.
}


# The value a capplan process set itself, beside it: a child capplan (the collection `serve` runs)
# inherits the parent's setting, and must tell it from one the user exported.
SET_BY_CAPPLAN_ENV = "CAPPLAN_JEMALLOC_CONF_SET"


def configure(command: str) -> str | None:
    """Set `command`'s jemalloc setting for polars (JEMALLOC_CONF_BY_COMMAND) unless the user
    exported one; returns the setting in force, None for jemalloc's defaults. Call before polars
    loads: later, only child processes see it."""
    current = os.environ.get(JEMALLOC_CONF_ENV)
    if current is None or current == os.environ.get(SET_BY_CAPPLAN_ENV):
        conf = JEMALLOC_CONF_BY_COMMAND.get(command)
        if conf is None:
            os.environ.pop(JEMALLOC_CONF_ENV, None)
            os.environ.pop(SET_BY_CAPPLAN_ENV, None)
        else:
            os.environ[JEMALLOC_CONF_ENV] = os.environ[SET_BY_CAPPLAN_ENV] = conf
    return os.environ.get(JEMALLOC_CONF_ENV)
