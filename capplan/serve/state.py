"""The running service's shared state: options, database, result cache, shutdown flag and the
scheduled collection's counters. One instance per process, made by the runner, read by the app."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Hashable
from typing import Any

from capplan.serve.cache import VersionedCache
from capplan.serve.config import ServeOptions
from capplan.serve.database import Database


class ServiceState:
    """What every part of the service shares."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.database = Database(options.db, lock_wait_seconds=options.lock_wait_seconds)
        self.cache = VersionedCache()
        self.stopping = threading.Event()
        self.collections: dict[str, int] = {"ok": 0, "failed": 0, "interrupted": 0, "busy": 0}
        self.collect_child: subprocess.Popen[str] | None = None

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per data version (the database file's state) and key."""
        return self.cache.get(key, self.database.version(), compute)
