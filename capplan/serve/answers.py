"""An endpoint's answer: validate the query, then the analysis' records from the cache or the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capplan.analysis import fleet
from capplan.serve.endpoints import Endpoint, records
from capplan.serve.query import canonical, parse_query
from capplan.serve.state import ServiceState


def answer(state: ServiceState, endpoint: Endpoint, query: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The records `endpoint` answers for `query` (a 400 UsageError before any work when invalid)."""
    parsed = parse_query(endpoint.query_params, query)
    if "window" in parsed and parsed["window"] is None:
        parsed["window"] = state.options.window
    key = ("api", endpoint.name, canonical(parsed))
    clusters = parsed.pop("cluster") or None

    def compute() -> list[dict[str, Any]]:
        with state.database.reader() as con:
            return records(fleet.run(con, clusters, lambda c: endpoint.call(c, parsed)).frame())

    return state.cached(key, compute)
