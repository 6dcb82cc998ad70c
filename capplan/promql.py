"""PromQL text building: label values placed into queries are always escaped here.

PromQL string literals follow Go's escaping rules (prometheus/promql/parser/lex.go: lexString
and lexEscape accept the escapes of strconv.Unquote), so a backslash, the quote character and
control characters must be escaped. Regex matchers (`=~`) are RE2, fully anchored by Prometheus
(labels.NewFastRegexMatcher wraps the pattern in `^(?:...)$`); a literal value inside a regex
must also have its metacharacters escaped, so `a"} or vector(1) #` becomes a value that matches
exactly that text and can never close the selector.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from capplan.errors import BadInputError

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# RE2 metacharacters (Go regexp.QuoteMeta escapes exactly these: `\.+*?()|[]{}^$`).
_REGEX_META = frozenset("\\.+*?()|[]{}^$")
# Prometheus label names (model.LabelNameRE in prometheus/common/model/labels.go).
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(value: str) -> str:
    """Escape `value` for use inside a double-quoted PromQL string literal.

    Raises BadInputError (exit 4) for text that is not valid Unicode (a lone surrogate, as
    Python makes from undecodable bytes on the command line): Prometheus label values are UTF-8
    and such a value could neither be sent nor match anything.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInputError(f"label value is not valid UTF-8 text: {value[:80]!r}") from exc
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def quote_regex(value: str) -> str:
    """Go's regexp.QuoteMeta: an RE2 pattern matching exactly `value`."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


# Kept for callers written before quote_regex was public.
_quote_meta = quote_regex


def label_matcher(name: str, values: Iterable[str]) -> str:
    """A matcher selecting label `name` equal to any of `values`: `name="v"` for one value,
    `name=~"a|b"` (each value regex-quoted, then string-escaped) for several.

    Prometheus anchors `=~` at both ends, so `name=~"a|b"` matches exactly `a` or `b`.
    """
    if not _LABEL_NAME_RE.match(name):
        raise ValueError(f"not a Prometheus label name: {name!r}")
    vals = list(dict.fromkeys(values))
    if not vals:
        raise ValueError("label_matcher needs at least one value")
    if len(vals) == 1:
        return f'{name}="{escape_label_value(vals[0])}"'
    for v in vals:
        escape_label_value(v)  # reject invalid text before joining
    return f'{name}=~"{escape_label_value("|".join(quote_regex(v) for v in vals))}"'
