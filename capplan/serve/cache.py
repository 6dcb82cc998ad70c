"""Results kept per data version: computed once, answered from memory until the store changes.

A key is whatever names the computation (endpoint and parameters); the version is
Database.version(). Concurrent requests for the same missing key wait for one computation
instead of each running it (16 scrapers at once cost one analysis run, not 16). Computations of
different keys run one at a time too: the process's peak memory is then that of its largest
analysis, not the sum of all in flight, so the pod's memory limit can be sized from one
measurement per cluster size (docs/serve.md). A request for a cached answer never waits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

# Distinct (endpoint, parameters) answers kept; a dashboard asks a handful, so 64 is ample and
# bounds memory when clients vary parameters.
MAX_ENTRIES = 64


class VersionedCache:
    """A small LRU of results, each valid for one data version."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()
        # One computation at a time (the module's docstring). Reentrant: a computation may ask
        # for another cached answer (/metrics reads the endpoints' answers) in the same thread.
        self._compute_lock = threading.RLock()
        self.computations = 0  # how many times compute() ran (tests and the docs' figures)

    def get(self, key: Hashable, version: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of `key` at `version`, computing it (once) when missing or stale."""
        hit = self._lookup(key, version)
        if hit is not None:
            return hit[0]
        with self._compute_lock:
            hit = self._lookup(key, version)  # another thread may have computed it meanwhile
            if hit is not None:
                return hit[0]
            value = compute()
            with self._lock:
                self.computations += 1
                self._entries[key] = (version, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return value

    def _lookup(self, key: Hashable, version: Hashable) -> tuple[Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return (entry[1],)
