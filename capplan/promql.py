"""PromQL text building: label values placed into queries are always escaped here.

PromQL string literals follow Go's escaping rules (prometheus/promql/parser/lex.go: lexString
accepts the escapes of strconv.Unquote), so a backslash, the quote character and control
characters must be escaped. Regex matchers (`=~`) are RE2, fully anchored by Prometheus; a literal
value inside a regex must also have its metacharacters escaped.
"""

from __future__ import annotations

from collections.abc import Iterable

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# RE2 metacharacters (regexp/syntax: QuoteMeta escapes exactly these).
_REGEX_META = set("\\.+*?()|[]{}^$")


def escape_label_value(value: str) -> str:
    """Escape `value` for use inside a double-quoted PromQL string literal."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _quote_meta(value: str) -> str:
    """Go's regexp.QuoteMeta: a regex matching exactly `value`."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


def label_matcher(name: str, values: Iterable[str]) -> str:
    """A matcher selecting label `name` equal to any of `values`: `name="v"` for one value,
    `name=~"a|b"` (each value regex-quoted, then string-escaped) for several."""
    vals = list(dict.fromkeys(values))
    if not vals:
        raise ValueError("label_matcher needs at least one value")
    if len(vals) == 1:
        return f'{name}="{escape_label_value(vals[0])}"'
    return f'{name}=~"{escape_label_value("|".join(_quote_meta(v) for v in vals))}"'
