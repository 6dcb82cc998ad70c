"""Property tests (hypothesis): quantities, durations and PromQL label escaping.

Each property is checked against a second, independent implementation: exact Fraction
arithmetic for quantities, a Python port of Go's strconv.Unquote for PromQL strings, Python's
`re` for the anchored RE2 pattern, and finally a real Prometheus for both.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from capplan.errors import BadInputError
from capplan.promql import escape_label_value, label_matcher
from capplan.quantity import (
    format_bytes,
    format_cpu,
    format_duration,
    parse_cpu_cores,
    parse_duration,
    parse_memory_bytes,
    parse_quantity,
)
from tests import tools
from tests.reliability import _prom

# Counted in the report: the sum of max_examples over this file.
EXAMPLES = 300
RELIABLE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
           "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
           "P": Fraction(10**15), "E": Fraction(10**18)}
UNITS = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600),
         "d": Fraction(86400), "w": Fraction(604800)}

# Text that is almost a quantity or duration: digits, signs, dots, suffix letters, spaces.
near_miss = st.text(alphabet="0123456789+-.eEKMGTPiunmkhdswx \t", max_size=12)
anything = st.one_of(st.text(max_size=40), near_miss,
                     st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
                     st.from_regex(r"\A[0-9]{1,6000}[a-zA-Z]{0,2}\Z"))


# --- quantities --------------------------------------------------------------------------------

@RELIABLE
@given(millis=st.integers(min_value=0, max_value=10**9))
def test_cpu_format_then_parse_round_trips(millis: int) -> None:
    cores = millis / 1000
    assert parse_cpu_cores(format_cpu(cores)) == pytest.approx(cores, abs=1e-12)


@RELIABLE
@given(n=st.integers(min_value=1, max_value=1023), suffix=st.sampled_from(list(BINARY)))
def test_memory_exact_binary_multiples_round_trip(n: int, suffix: str) -> None:
    value = n * BINARY[suffix]
    assert format_bytes(value) == f"{n}{suffix}"
    assert parse_memory_bytes(format_bytes(value)) == value


@RELIABLE
@given(value=st.integers(min_value=0, max_value=2**62))
def test_memory_format_then_parse_is_within_the_shown_precision(value: int) -> None:
    text = format_bytes(value)
    back = parse_memory_bytes(text)
    # format_bytes shows one decimal of the largest binary unit <= value: error <= 0.05 unit
    # (+1 byte for the round-up of fractional bytes).
    unit = max([1] + [f for f in BINARY.values() if f <= value])
    assert abs(back - value) <= 0.05 * unit + 1, (value, text, back)


@RELIABLE
@given(whole=st.integers(min_value=0, max_value=10**6), frac=st.integers(min_value=0, max_value=999),
       suffix=st.sampled_from(list(BINARY) + list(DECIMAL)), sign=st.sampled_from(["", "+"]))
def test_quantity_parse_equals_exact_arithmetic(whole: int, frac: int, suffix: str, sign: str) -> None:
    text = f"{sign}{whole}.{frac:03d}{suffix}"
    exact = (whole + Fraction(frac, 1000)) * (BINARY.get(suffix) or DECIMAL[suffix])
    assert parse_quantity(text) == pytest.approx(float(exact), rel=1e-15, abs=1e-18)
    assert parse_memory_bytes(text) == math.ceil(exact)  # apiserver rounds fractional bytes up


@RELIABLE
@given(mantissa=st.integers(min_value=0, max_value=10**6), exp=st.integers(min_value=-9, max_value=18),
       e=st.sampled_from("eE"))
def test_quantity_exponent_form(mantissa: int, exp: int, e: str) -> None:
    exact = mantissa * Fraction(10) ** exp
    assert parse_quantity(f"{mantissa}{e}{exp}") == pytest.approx(float(exact), rel=1e-15)


@RELIABLE
@given(text=anything)
@example(text="1" * 5000)
@example(text="9" * 400)
@example(text="1e30")
@example(text="1e-30")
@example(text="-0")
def test_quantity_garbage_is_bad_input_never_another_exception(text: str) -> None:
    for parse in (parse_quantity, parse_cpu_cores, parse_memory_bytes):
        try:
            value = parse(text)
        except BadInputError as err:
            assert "\n" not in str(err) and str(err)
        else:
            assert math.isfinite(value)


@RELIABLE
@given(value=st.one_of(st.floats(), st.integers(min_value=-(10**400), max_value=10**400), st.booleans(), st.none()))
def test_quantity_non_text_values_are_bad_input_or_finite(value: object) -> None:
    for parse in (parse_quantity, parse_cpu_cores, parse_memory_bytes):
        try:
            result = parse(value)  # type: ignore[arg-type]
        except BadInputError:
            continue
        assert math.isfinite(result)


# --- durations ---------------------------------------------------------------------------------

@RELIABLE
@given(parts=st.lists(st.tuples(st.integers(min_value=0, max_value=10**5), st.sampled_from(list(UNITS))),
                      min_size=1, max_size=4))
def test_duration_parse_equals_sum_of_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * UNITS[u] for n, u in parts)
    if total <= 0:
        with pytest.raises(BadInputError):
            parse_duration(text)
        return
    exact_us = total * 10**6
    # Parsing adds floats: allow 1 microsecond plus float rounding of the total (2^-50 relative).
    slack = timedelta(microseconds=1 + float(exact_us) * 2**-50)
    assert abs(parse_duration(text) - timedelta(microseconds=round(exact_us))) <= slack


@RELIABLE
@given(seconds=st.integers(min_value=1, max_value=10**8))
def test_duration_format_then_parse_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@RELIABLE
@given(text=st.one_of(anything, st.from_regex(r"\A[0-9]{1,40}[smhdw]\Z")))
@example(text="99999999999999999999d")
@example(text="9" * 400 + "d")
@example(text="0s")
def test_duration_garbage_is_bad_input_never_another_exception(text: str) -> None:
    try:
        value = parse_duration(text)
    except BadInputError as err:
        assert "\n" not in str(err) and str(err)
    else:
        assert value > timedelta(0)


# --- PromQL escaping: against a port of Go's strconv.Unquote -------------------------------------

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


def go_unquote(literal: str) -> str:
    """Go's strconv.Unquote for a double-quoted string (what PromQL's lexer accepts)."""
    assert literal[0] == '"' and literal[-1] == '"'
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise ValueError(f"unescaped {ch!r} at {i}: the literal would end early")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        elif esc in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{esc}")
    return "".join(out)


MATCHER_RE = re.compile(r'^(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)(?P<op>=~?)(?P<lit>".*")$', re.S)
INJECTION = 'a"} or vector(1) #'


@RELIABLE
@given(value=st.text())
def test_escaped_value_unquotes_to_itself_and_cannot_close_the_literal(value: str) -> None:
    escaped = escape_label_value(value)
    assert go_unquote(f'"{escaped}"') == value
    # No bare quote and no raw newline survive: the literal cannot end early.
    assert re.search(r'(?<!\\)(?:\\\\)*"', escaped) is None
    assert "\n" not in escaped


@RELIABLE
@given(values=st.lists(st.text(), min_size=1, max_size=5), other=st.text())
def test_matcher_matches_exactly_the_given_values(values: list[str], other: str) -> None:
    matcher = label_matcher("namespace", values)
    parts = MATCHER_RE.match(matcher)
    assert parts is not None, matcher
    text = go_unquote(parts["lit"])
    if parts["op"] == "=":
        assert len(set(values)) == 1 and text == values[0]
        return
    # Prometheus anchors =~ as ^(?:...)$: that is re.fullmatch.
    pattern = re.compile(text, re.S)
    for v in values:
        assert pattern.fullmatch(v)
    assert bool(pattern.fullmatch(other)) == (other in values)


def test_the_injection_string_stays_one_value() -> None:
    assert label_matcher("namespace", [INJECTION]) == 'namespace="a\\"} or vector(1) #"'
    assert label_matcher("namespace", [INJECTION, "b"]) == r'namespace=~"a\"\\} or vector\\(1\\) #|b"'


@RELIABLE
@given(prefix=st.text(max_size=5), suffix=st.text(max_size=5),
       surrogate=st.integers(min_value=0xD800, max_value=0xDFFF).map(chr))
def test_undecodable_text_is_bad_input(prefix: str, suffix: str, surrogate: str) -> None:
    with pytest.raises(BadInputError):
        escape_label_value(prefix + surrogate + suffix)
    with pytest.raises(BadInputError):
        label_matcher("namespace", ["ok", prefix + surrogate + suffix])


def test_label_names_are_checked() -> None:
    with pytest.raises(ValueError):
        label_matcher('namespace="x"} or vector(1) #', ["a"])
    with pytest.raises(ValueError):
        label_matcher("namespace", [])


# --- PromQL escaping: against a real Prometheus -------------------------------------------------

NASTY = [INJECTION, "a", "b", "ab", "aXb", "a.b", "a|b", "a\\b", 'q"uote', "new\nline", "tab\tx", ".*", "a+",
         "(x)", "[ab]", "{1}", "^a$", "ünï©ødé", "a b", "it's", "$1", "?", "}", "\\", "a\\", "日本"]
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def nasty_prometheus(tmp_path_factory: pytest.TempPathFactory):
    tools.require("prometheus", "promtool")
    base = tmp_path_factory.mktemp("nasty")
    lines = ["# TYPE esc_probe gauge"]
    for ts in (T0 - 60, T0):
        lines += [f'esc_probe{{namespace="{_prom.om_escape(v)}"}} 1 {ts}' for v in NASTY]
    _prom.backfill("\n".join(lines), base / "tsdb")
    prom = _prom.Prometheus(base / "tsdb").start()
    yield prom
    prom.stop()


def test_real_prometheus_stored_every_nasty_value(nasty_prometheus) -> None:
    got = {r["metric"]["namespace"] for r in nasty_prometheus.query("esc_probe", T0)}
    assert got == set(NASTY)


def test_injection_selects_nothing_and_injects_nothing(nasty_prometheus) -> None:
    # Without the series: a filter of exactly the attack string must return only that series,
    # never vector(1) (a series without labels) and never everything.
    for values in ([INJECTION], [INJECTION, "zzz-absent"]):
        got = nasty_prometheus.query(f"esc_probe{{{label_matcher('namespace', values)}}}", T0)
        assert [r["metric"].get("namespace") for r in got] == [INJECTION]
    absent = 'b"} or vector(1) #'
    for values in ([absent], [absent, "zzz-absent"]):
        assert nasty_prometheus.query(f"esc_probe{{{label_matcher('namespace', values)}}}", T0) == []


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chosen=st.lists(st.sampled_from(NASTY), min_size=1, max_size=4),
       absent=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
                       max_size=2))
def test_real_prometheus_selects_exactly_the_chosen_values(nasty_prometheus, chosen, absent) -> None:
    absent = [a for a in absent if a not in NASTY]
    got = nasty_prometheus.query(f"esc_probe{{{label_matcher('namespace', chosen + absent)}}}", T0)
    assert sorted(r["metric"]["namespace"] for r in got) == sorted(set(chosen))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_real_prometheus_parses_the_escaped_literal_back_to_the_value(nasty_prometheus, value) -> None:
    # A bare string literal is a valid PromQL expression whose result is the unquoted string.
    import json
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode({"query": f'"{escape_label_value(value)}"', "time": str(T0)}).encode()
    with urllib.request.urlopen(nasty_prometheus.url + "/api/v1/query", data=body, timeout=10) as r:
        answer = json.load(r)
    assert answer["data"]["resultType"] == "string"
    assert answer["data"]["result"][1] == value
