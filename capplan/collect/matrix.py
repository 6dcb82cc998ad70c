"""Prometheus matrix answers as columns: each series' labels and point count, and every point's
time and value text in series order, decoded without a Python object per point.

A matrix answer is `{"status": "success", "data": {"resultType": "matrix", "result": [{"metric":
{...}, "values": [[t, "v"], ...]}, ...]}}`. msgspec decodes the envelope and the labels and keeps
each series' `values` as its raw JSON text; polars then cuts those texts into times and values in
Rust, without the GIL. On bench/collect_bench.py's M first run (228 answers, 163 MB, 5.6 M points)
that is ~2.2 s of CPU where orjson's objects and the frames built from them took ~4.5 s, and the
decoded answer (~5x the JSON) is never held. An answer in any other shape (a vector, escapes or
spaces inside value strings, a time as a string...) is decoded the general way (from_results),
which is also what every malformed answer goes through, with its one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import msgspec
import polars as pl

from capplan.errors import BadInputError

# A series' values exactly as Prometheus and VictoriaMetrics write them: [[number, "text"], ...],
# the text without quotes, escapes, brackets, commas or spaces (so its tokens are the points').
_NUMBER = r"[-+0-9.eE]+"
_TEXT = r'"[^",\[\]\\\s]+"'
_POINT = rf"\[\s*{_NUMBER}\s*,\s*{_TEXT}\s*\]"
_PLAIN_VALUES = rf"^\[\s*(?:{_POINT}\s*(?:,\s*{_POINT}\s*)*)?\]$"
_TOKEN = r'[^\[\]",\s]+'


class _Series(msgspec.Struct):
    metric: dict[str, str]
    values: msgspec.Raw


class _Data(msgspec.Struct):
    resultType: str
    result: list[_Series]


class _Answer(msgspec.Struct):
    status: str
    data: _Data


_DECODER = msgspec.json.Decoder(_Answer)


@dataclass
class Matrix:
    """One or more matrix answers as columns: `metrics[i]` are series i's labels and `counts[i]`
    its number of points; `times` (epoch seconds) and `values` (the answer's value texts, e.g.
    "0.25", "NaN", "+Inf") hold every point, series after series, each in the answer's order."""

    metrics: list[dict[str, str]]
    counts: list[int]
    times: pl.Series
    values: pl.Series

    def __len__(self) -> int:
        return len(self.metrics)

    @property
    def points(self) -> int:
        return self.times.len()

    @staticmethod
    def empty() -> Matrix:
        """An answer without series."""
        return Matrix([], [], pl.Series("t", [], dtype=pl.Float64), pl.Series("value", [], dtype=pl.Utf8))

    @staticmethod
    def concat(parts: Sequence[Matrix]) -> Matrix:
        """The series of several answers (halves of a range, namespace batches) one after another."""
        if len(parts) == 1:
            return parts[0]
        return Matrix([m for p in parts for m in p.metrics], [c for p in parts for c in p.counts],
                      pl.concat([p.times for p in parts]), pl.concat([p.values for p in parts]))

    @staticmethod
    def from_results(results: Sequence[dict[str, Any]]) -> Matrix:
        """Decoded results (lists of {"metric": {...}, "values": [[t, "v"], ...]}) as columns; a
        point that is not a [number, text] pair is a malformed answer (BadInputError)."""
        counts = [len(r["values"]) for r in results]
        total = sum(counts)
        # [[t, "v"], ...] flattened at C speed to t, "v", t, "v", ...
        flat = list(chain.from_iterable(chain.from_iterable(r["values"] for r in results)))
        if len(flat) != 2 * total:
            raise BadInputError("malformed sample in a Prometheus answer: a point is not a [time, value] pair")
        try:
            times = pl.Series("t", flat[0::2], dtype=pl.Float64, strict=False)
            values = pl.Series("value", flat[1::2], dtype=pl.Utf8)
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            raise BadInputError(f"malformed sample in a Prometheus answer: {str(exc).splitlines()[0][:120]}") from None
        if times.null_count():
            raise BadInputError("malformed sample in a Prometheus answer: a sample time is not a number")
        return Matrix([r["metric"] for r in results], counts, times, values)

    def results(self) -> list[dict[str, Any]]:
        """Back to the decoded form (for the few small answers read label by label)."""
        times, values = self.times.to_list(), self.values.to_list()
        out, at = [], 0
        for metric, n in zip(self.metrics, self.counts, strict=True):
            out.append({"metric": metric, "values": [[t, v] for t, v in zip(times[at:at + n], values[at:at + n], strict=True)]})
            at += n
        return out

    def by_name(self) -> dict[str, Matrix] | None:
        """The answer of a query over several metrics (`{__name__=~"a|b"}[range]`) as one Matrix per
        metric name, each series in the answer's order; None when a series carries no `__name__`
        (a backend that drops it: the metrics are then asked for one by one)."""
        names = [m.get("__name__") for m in self.metrics]
        if any(name is None for name in names):
            return None
        members: dict[str, list[int]] = {}
        for index, name in enumerate(names):
            members.setdefault(str(name), []).append(index)
        if len(members) <= 1:
            return {name: self for name in members}
        # each point's series: the number of series ending at or before it (numpy.repeat(arange, counts))
        ends = pl.Series(self.counts, dtype=pl.Int64).cum_sum()
        owner = ends.search_sorted(pl.int_range(0, self.points, eager=True), side="right").cast(pl.Int64)
        out = {}
        for name, indices in members.items():
            keep = owner.is_in(indices)
            out[name] = Matrix([self.metrics[i] for i in indices], [self.counts[i] for i in indices],
                               self.times.filter(keep), self.values.filter(keep))
        return out

    def renamed(self, aliases: dict[str, str]) -> Matrix:
        """The same answer with label names renamed (a label called "value" would clash)."""
        metrics = [{aliases.get(k, k): v for k, v in m.items()} for m in self.metrics]
        return Matrix(metrics, self.counts, self.times, self.values)


def as_matrix(results: Sequence[dict[str, Any]] | Matrix) -> Matrix:
    """Columns of either form of an answer."""
    return results if isinstance(results, Matrix) else Matrix.from_results(results)


def decode(body: bytes) -> Matrix | None:
    """A successful matrix answer's body as columns; None when the body is anything else (an
    error, a vector, another shape, invalid JSON): the caller then decodes it the general way."""
    try:
        answer = _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if answer.status != "success" or answer.data.resultType != "matrix":
        return None
    result = answer.data.result
    texts = pl.Series([bytes(s.values) for s in result], dtype=pl.Binary).cast(pl.Utf8, strict=False)
    if texts.null_count() or not texts.str.contains(_PLAIN_VALUES).all():
        return None
    tokens = texts.str.extract_all(_TOKEN)
    flat = tokens.explode(empty_as_null=False)
    try:
        times = flat.gather_every(2).cast(pl.Float64).rename("t")
    except pl.exceptions.PolarsError:
        return None  # a "number" such as "1e" or "." that the pattern let through
    return Matrix([s.metric for s in result], (tokens.list.len() // 2).to_list(), times,
                  flat.gather_every(2, offset=1).rename("value"))
