"""How quickly a command's process gives freed memory back to the system, set per command before
polars loads: polars' bundled jemalloc reads `_RJEM_MALLOC_CONF` once, at its first allocation.

`import polars` itself writes that variable: its own setting (polars 1.44: `dirty_decay_ms:500,
muzzy_decay_ms:1000`, keep freed pages 0.5 s to reuse them without a page fault) followed by any
value already there, which wins (jemalloc takes the last value of a key). Keeping pages is the
right trade for a command that allocates and frees the same sizes over and over, and the wrong one
where a command's stages each build large frames of their own: the pages one stage freed still
count in RSS while the next stage allocates more, so the peak is a sum of stages. Each setting
below was chosen by measuring both ways (bench/RESULTS.md, section AL). A value the user exported
is kept.
"""

from __future__ import annotations

import os

JEMALLOC_CONF_ENV = "_RJEM_MALLOC_CONF"  # tikv-jemallocator's prefix, as polars builds it
RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"

JEMALLOC_CONF_BY_COMMAND: dict[str, str] = {
    # The History's frames (per series, per interval, the CPU histogram) and then the strategy's:
    # on the bench's L year file, `capplan recommend --window 90d` peaked at 405-415 MiB (vpa) and
    # 415-431 (auto) with polars' own setting, 337-347 and 369-382 at once, in the same CPU time; at
    # M 250-256 and 277-290 either way.
    "recommend": RETURN_AT_ONCE,
    # One answer after another in one process: with polars' own, the frames of one analysis still
    # held RSS while the next one ran and the pod's peak was the sum of several; returned at once,
    # the peak is the largest analysis (docs/serve.md sizes the pod from it).
    "serve": RETURN_AT_ONCE,
    # A collection frees a chunk's frames every few seconds, so kept they piled up in RSS
    # (bench/collect_bench.py's M first run: 880 -> 786 MiB peak over 3 days with immediate return).
    # Returning them at once then cost a page fault on every reuse: on the 7-day M first run 13 s of
    # system CPU (44.6 s in all, 548 MiB peak) against 3.3 s after 1 s (34.9 s, 594 MiB).
    "collect": "dirty_decay_ms:1000,muzzy_decay_ms:0",
    # Not listed, polars' own: `report` at L freed at once took 2 s more system CPU (5.6-5.8 s
    # against 3.5-3.8 s) for 0-20 MiB less peak RSS; `forecast --window 365d` 1.2 s more for 10 MiB,
    # `eviction` the same time for 5 MiB.
}


# What the environment held before the first capplan process (or bench) set anything ("": nothing),
# kept for the processes it starts: polars exports its own value in front of ours, so a child
# (`serve`'s collection, the bench's steps) cannot tell the user's value from what it inherited.
USER_CONF_ENV = "CAPPLAN_USER_JEMALLOC_CONF"
# What `import polars` exports when nothing else was set (polars/__init__.py; POLARS_THP=1 adds to
# it): inherited from a parent that imported polars, it is not the user's.
POLARS_OWN_CONFS = ("dirty_decay_ms:500,muzzy_decay_ms:1000",
                    "dirty_decay_ms:500,muzzy_decay_ms:1000,thp:always,metadata_thp:always")


def users_conf() -> str:
    """The value the user exported ("" for none), recorded for child processes on the first call."""
    user = os.environ.get(USER_CONF_ENV)
    if user is None:
        user = os.environ.get(JEMALLOC_CONF_ENV, "")
        if user in POLARS_OWN_CONFS:
            user = ""
        os.environ[USER_CONF_ENV] = user
    return user


def configure(command: str) -> str | None:
    """Set `command`'s jemalloc setting for polars (JEMALLOC_CONF_BY_COMMAND) unless the user
    exported one; returns the setting in force (None: polars' own). Call before polars loads:
    later, only child processes see it."""
    conf = users_conf() or JEMALLOC_CONF_BY_COMMAND.get(command)
    if conf:
        os.environ[JEMALLOC_CONF_ENV] = conf
    else:
        os.environ.pop(JEMALLOC_CONF_ENV, None)
    return conf or None
