"""capplan.collect.matrix: matrix answers decoded straight into columns give exactly the columns
of the general decoding (orjson, then Matrix.from_results), or decline (None) for any other shape."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capplan.collect import matrix
from capplan.collect import transform as tf
from capplan.collect.matrix import Matrix
from capplan.errors import BadInputError

T0 = 1_790_000_100


def body(result: list[dict], result_type: str = "matrix", status: str = "success") -> bytes:
    return orjson.dumps({"status": status, "data": {"resultType": result_type, "result": result}})


def general(raw: bytes) -> Matrix:
    return Matrix.from_results(orjson.loads(raw)["data"]["result"])


def same(a: Matrix, b: Matrix) -> bool:
    return (a.metrics == b.metrics and a.counts == b.counts and a.times.equals(b.times, check_names=False)
            and a.values.equals(b.values, check_names=False))


def test_a_prometheus_answer_gives_the_general_columns() -> None:
    result = [
        {"metric": {"namespace": "a", "pod": 'we"ird}', "container": "c,1"}, "values": [[T0, "0.5"], [T0 + 60.125, "NaN"]]},
        {"metric": {"namespace": "b"}, "values": []},
        {"metric": {}, "values": [[T0, "+Inf"], [T0 + 1, "-Inf"], [T0 + 2, "1.5e+06"], [T0 + 3, "-0.001"]]},
    ]
    raw = body(result)
    fast = matrix.decode(raw)
    assert fast is not None and same(fast, general(raw))
    assert fast.counts == [2, 0, 4] and fast.values.to_list() == ["0.5", "NaN", "+Inf", "-Inf", "1.5e+06", "-0.001"]
    assert fast.metrics[0]["pod"] == 'we"ird}'
    assert fast.results() == result  # back to the decoded form (node labels are read that way)
    # and the frames built from either are the same
    labels = ["namespace", "pod", "container"]
    assert tf.to_frame(fast, labels).equals(tf.to_frame(result, labels))
    assert tf.raw_frame(fast, labels).samples.equals(tf.raw_frame(result, labels).samples)


def test_spaces_between_tokens_are_read_too() -> None:
    raw = b'{"status": "success", "data": {"resultType": "matrix", "result": [\n {"metric": {"a": "x"},\n  "values": [ [ 1790000100 , "1" ] ,\n [1790000160, "2"] ]}]}}'
    fast = matrix.decode(raw)
    assert fast is not None and same(fast, general(raw)) and fast.times.to_list() == [T0, T0 + 60]


@pytest.mark.parametrize("raw", [
    body([{"metric": {"a": "x"}, "value": [T0, "1"]}], result_type="vector"),
    body([{"metric": {"a": "x"}, "values": [[T0, "1"]]}], status="error"),
    body([{"metric": {"a": "x"}, "values": [[str(T0), "1"]]}]),        # a time as a string
    body([{"metric": {"a": "x"}, "values": [[T0, "1", "2"]]}]),        # not a pair
    body([{"metric": {"a": "x"}, "values": [[T0, 1.5]]}]),             # a value as a number
    body([{"metric": {"a": "x"}, "values": [[T0, ""]]}]),              # an empty value text
    body([{"metric": {"a": 1}, "values": [[T0, "1"]]}]),               # a label value that is no string
    b'{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "\\u0031"]]}]}}',
    b"<html>not an API</html>",
])
def test_other_shapes_are_left_to_the_general_decoding(raw: bytes) -> None:
    assert matrix.decode(raw) is None


def test_a_malformed_point_is_bad_input_through_the_general_path() -> None:
    for values in ([[T0, "1", "2"]], [["x", "1"]]):
        raw = body([{"metric": {}, "values": values}])
        assert matrix.decode(raw) is None
        with pytest.raises(BadInputError, match="malformed sample"):
            general(raw)


label_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
value_text = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(
    lambda v: "NaN" if v != v else ("+Inf" if v == float("inf") else ("-Inf" if v == float("-inf") else repr(v)))),
    st.integers(-10**12, 10**12).map(str))
point = st.tuples(st.one_of(st.integers(0, 2 * 10**9), st.integers(0, 2 * 10**12).map(lambda ms: ms / 1000)), value_text)
series = st.fixed_dictionaries({"metric": st.dictionaries(st.sampled_from(["namespace", "pod", "container", "x"]), label_text),
                                "values": st.lists(point.map(list), max_size=6)})


@settings(max_examples=200, deadline=None)
@given(st.lists(series, max_size=5))
def test_any_prometheus_answer_decodes_to_the_general_columns(result: list[dict]) -> None:
    raw = body(result)
    fast = matrix.decode(raw)
    assert fast is not None
    assert same(fast, general(raw))
    assert same(Matrix.concat([fast, fast]), Matrix.from_results(result + result))


def test_by_name_splits_an_answer_of_several_metrics_keeping_each_series_order() -> None:
    """Series of one metric (wherever they stand in the answer) with their own points, in the
    answer's order; a series without points stays; an answer whose series lack `__name__` cannot
    be split (None)."""
    results = [
        {"metric": {"__name__": "a", "pod": "p1"}, "values": [[1, "1"], [2, "2"]]},
        {"metric": {"__name__": "b", "pod": "p1"}, "values": []},
        {"metric": {"__name__": "a", "pod": "p2"}, "values": [[3, "3"]]},
        {"metric": {"__name__": "c"}, "values": [[4, "NaN"], [5, "+Inf"]]},
    ]
    parts = Matrix.from_results(results).by_name()
    assert parts is not None and list(parts) == ["a", "b", "c"]
    for name, part in parts.items():
        mine = [r for r in results if r["metric"]["__name__"] == name]
        assert part.results() == mine, name
    only = Matrix.from_results(results[:1]).by_name()
    assert only is not None and only["a"].results() == results[:1]
    assert Matrix.from_results([*results, {"metric": {"pod": "x"}, "values": [[6, "6"]]}]).by_name() is None
    assert Matrix.empty().by_name() == {} and Matrix.empty().points == 0
