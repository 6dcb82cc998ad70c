"""In-process collection for `capplan serve --collect-every`: one run of the collector against the
service's shared database object, stopping after the current chunk when the service stops."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from capplan.errors import CapplanError

if TYPE_CHECKING:
    from capplan.service import Service


def collector_available() -> bool:
    """Whether this build has the collector (capplan.collect, issue 3)."""
    try:
        from capplan import collect  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "capplan.collect":
            return False
        raise
    return True


def collect_once(service: Service, options: dict[str, Any]) -> str:
    """One collection run; returns its outcome (ok, interrupted, failed). A failure is logged in
    one line and the service keeps serving committed data."""
    from capplan import collect

    con = service.database.writer()
    try:
        collect.collect_into(con, db_path=service.database.path, stop=service.stopping, **options)
        return "interrupted" if service.stopping.is_set() else "ok"
    except CapplanError as err:
        service.collector_error = str(err)
        print(f"capplan serve: collection failed: {err}", file=sys.stderr, flush=True)
        return "failed"
    except Exception as exc:  # a bug in a run must not take the API down
        service.collector_error = f"{type(exc).__name__}: {exc}"
        print(f"capplan serve: collection failed: internal error: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return "failed"
    finally:
        con.close()
