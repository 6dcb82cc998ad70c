"""Liveness and readiness.

Liveness (/healthz) never touches the database: a slow collection or a stale database must not
get the pod restarted, which would fix neither. Readiness (/readyz) says whether the answers are
worth serving: the database opens, and the newest successful collection finished less than
--max-staleness ago. A database that was imported and never collected has no collection to
judge, so it is not ready unless --max-staleness is 0 (then only the open is checked); the body
says so.
"""

from __future__ import annotations

from typing import Any

import duckdb

from capplan.errors import CapplanError
from capplan.quantity import format_duration
from capplan.serve.database import collection_status, newest_sample, utcnow
from capplan.serve.state import ServiceState


def readiness(state: ServiceState) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body)."""
    if state.stopping.is_set():
        return False, {"ready": False, "reason": "shutting down"}
    try:
        with state.database.reader() as con:
            status = collection_status(con)
            newest = newest_sample(con)
    except CapplanError as err:
        return False, {"ready": False, "reason": str(err)}
    except duckdb.Error as err:
        return False, {"ready": False, "reason": f"database error: {str(err).splitlines()[0]}"}
    body: dict[str, Any] = {"db": str(state.database.path)}
    if status.last_ok_finished_at is not None:
        age = utcnow() - status.last_ok_finished_at
        body["last_collection"] = status.last_ok_finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        body["age_seconds"] = round(age.total_seconds(), 1)
    limit = state.options.max_staleness
    if limit.total_seconds() <= 0:
        return True, {"ready": True, **body}
    body["max_staleness"] = format_duration(limit)
    if status.last_ok_finished_at is None:
        if newest is not None:
            reason = ("no finished collection recorded: the data was imported, so its freshness cannot be "
                      "judged; serve imported data with --max-staleness 0")
        else:
            reason = "no finished collection recorded and no data yet"
        return False, {"ready": False, "reason": reason, **body}
    if utcnow() - status.last_ok_finished_at > limit:
        return False, {"ready": False, "reason": f"last collection older than {format_duration(limit)}", **body}
    return True, {"ready": True, **body}
