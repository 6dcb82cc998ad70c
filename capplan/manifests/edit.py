"""Rewrite containers' `resources` in a manifest file and nothing else.

ruamel.yaml's round-trip composer gives every node its position in the file; an edit is a
splice at those positions (a value token replaced, a line inserted or removed), so every byte
outside the changed values stays as it was: comments, key order, quoting, indentation, flow
style, anchors elsewhere, document markers. Where a `resources` block uses anchors, aliases or
merge keys, that container's whole `resources` value (and the other users of the same anchor)
is written out as an explicit flow mapping, so no other container changes through an alias.
Every result is parsed again and compared with the intended objects before it is returned.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from capplan.errors import CapplanError
from capplan.manifests import yamlnodes as yn
from capplan.manifests.load import Container, ManifestFile, parse_text

# (section, resource) -> the quantity to write, or None to remove the value.
Change = dict[tuple[str, str], "str | None"]
SECTIONS = ("requests", "limits")
INDENT_STEP = 2  # used only when a new block has no sibling to copy its indentation from
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")


class EditError(CapplanError):
    """The edited text would not be what was intended (a bug: exit 1, file untouched)."""

    exit_code = 1


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if _PLAIN_SAFE.match(text) and not isinstance(value, float) else json.dumps(text)


def _quoted(node: ScalarNode, text: str) -> str:
    """The new value in the quoting style the old one was written in."""
    if node.style == "'":
        return "'" + text.replace("'", "''") + "'"
    if node.style == '"':
        return json.dumps(text)
    return text


def _apply(original: dict | None, change: Change) -> dict:
    """The resources mapping after a change (key order kept, new keys appended, emptied
    sections dropped)."""
    result = _plain_copy(original) if isinstance(original, dict) else {}
    for (section, resource), new in change.items():
        sec = result.get(section)
        if not isinstance(sec, dict):
            sec = {}
        if new is None:
            sec.pop(resource, None)
        else:
            sec[resource] = new
        if sec:
            result[section] = sec
        else:
            result.pop(section, None)
    return result


def _get_path(data: Any, path: tuple) -> Any:
    for step in path:
        data = data[step]
    return data


class _Splicer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, start: int, end: int, new: str) -> None:
        self.edits.append((start, end, new))

    def result(self) -> str:
        out = self.text
        spans = sorted(self.edits, key=lambda e: (e[0], e[1]))
        for (_, e1, _), (s2, _, _) in itertools.pairwise(spans):
            if s2 < e1:
                raise EditError("overlapping edits")
        for start, end, new in reversed(spans):
            out = out[:start] + new + out[end:]
        return out


def _plain_copy(value: Any) -> Any:
    """A copy without shared sub-objects (an alias loads as the very same dict)."""
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def _add(sp: _Splicer, mapping: MappingNode, entries: list[tuple[str, Any]]) -> None:
    """Append entries to a mapping: lines at the end of a block mapping (nested dicts as
    nested blocks), `, key: value` before the closing brace of a flow mapping."""
    text = sp.text
    if mapping.flow_style:
        items = ", ".join(f"{k}: {_flow(v)}" for k, v in entries)
        if yn.entries(mapping):
            at = yn.content_end(text, yn.entries(mapping)[-1][1])
            sp.replace(at, at, ", " + items)
        else:
            close = text.rfind("}", mapping.start_mark.index, mapping.end_mark.index)
            sp.replace(close, close, items)
        return
    column = yn.entries(mapping)[0][0].start_mark.column if yn.entries(mapping) else 0
    step = _child_step(mapping)
    lines: list[str] = []

    def emit(indent: int, key: str, value: Any) -> None:
        if isinstance(value, dict):
            lines.append(" " * indent + f"{key}:")
            for k, v in value.items():
                emit(indent + step, k, v)
        else:
            lines.append(" " * indent + f"{key}: {_flow(value)}")

    for k, v in entries:
        emit(column, k, v)
    at = yn.after_line(text, yn.content_end(text, mapping))
    newline = "\r\n" if "\r\n" in text else "\n"   # keep a Windows-edited file's line endings
    prefix = "" if at == 0 or text[at - 1] == "\n" else newline
    sp.replace(at, at, prefix + "".join(line + newline for line in lines))


def _remove(sp: _Splicer, mapping: MappingNode, key: Node, val: Node) -> None:
    """Remove one entry: its lines from a block mapping, `key: value` and one comma from a flow one."""
    text = sp.text
    end = yn.alias_span(text, key)[1] if yn.is_alias_use(key, val) else yn.content_end(text, val)
    if not mapping.flow_style:
        sp.replace(yn.line_start(text, key.start_mark.index), yn.after_line(text, end), "")
        return
    pairs = yn.entries(mapping)
    index = next(i for i, (k, _) in enumerate(pairs) if k is key)
    if index > 0:  # drop ", key: value" after the previous entry
        sp.replace(yn.content_end(text, pairs[index - 1][1]), end, "")
    elif len(pairs) > 1:  # the first of several: drop "key: value, "
        sp.replace(key.start_mark.index, pairs[1][0].start_mark.index, "")
    else:
        sp.replace(key.start_mark.index, end, "")


def _child_step(mapping: MappingNode) -> int:
    """The indentation of nested blocks in this mapping (2 when there is none to copy)."""
    for key, val in yn.entries(mapping):
        if isinstance(val, MappingNode) and not val.flow_style and yn.entries(val):
            return yn.entries(val)[0][0].start_mark.column - key.start_mark.column
    return INDENT_STEP


def _edit_section(sp: _Splicer, res: MappingNode, section: str, changes: dict[str, str | None],
                  final: dict | None) -> None:
    found = yn.get(res, section)
    if found is None:
        if final:
            _add(sp, res, [(section, final)])
        return
    key, sec = found
    if not final:
        _remove(sp, res, key, sec)
        return
    if not isinstance(sec, MappingNode):  # `limits:` with no value, or `limits: ~`
        written = sec.end_mark.index > sec.start_mark.index  # `~` or `null` is written, an empty value is not
        end = sec.end_mark.index if written else key.end_mark.index + 1  # + the colon
        sp.replace(key.end_mark.index, end, f": {_flow(final)}")
        return
    additions = []
    for resource, new in changes.items():
        entry = yn.get(sec, resource)
        if entry is None:
            if new is not None:
                additions.append((resource, new))
        elif new is None:
            _remove(sp, sec, *entry)
        elif isinstance(entry[1], ScalarNode) and not yn.is_null(entry[1]):
            sp.replace(entry[1].start_mark.index, entry[1].end_mark.index, _quoted(entry[1], new))
        else:
            sp.replace(entry[0].end_mark.index, yn.content_end(sp.text, entry[1]), f": {_flow(new)}")
    if additions:
        _add(sp, sec, additions)


def _replace_whole(sp: _Splicer, container: MappingNode, final: dict) -> None:
    """Write a container's resources as one explicit flow mapping (the anchor/alias path)."""
    key, res = yn.get(container, "resources")  # type: ignore[misc]
    if yn.is_alias_use(key, res):
        end = yn.alias_span(sp.text, key)[1]
    elif yn.is_null(res):
        end = key.end_mark.index + 1
    else:
        end = yn.content_end(sp.text, res)
    sp.replace(key.end_mark.index, end, f": {_flow(final)}")


def edit_text(mf: ManifestFile, edits: list[tuple[Container, Change]]) -> str:
    """The file's text with each container's resources changed; raises EditError when the
    result would differ from the original anywhere else."""
    safe = YAML(typ="safe", pure=True)
    data = list(safe.load_all(mf.text))
    expected = copy.deepcopy(data)
    sp = _Splicer(mf.text)
    changed_nodes: set[int] = set()
    whole: dict[int, tuple[MappingNode, dict]] = {}
    for container, change in edits:
        if not change:
            continue
        current = _plain_copy(_get_path(data, container.path).get("resources"))
        final = _apply(current, change)
        target = _get_path(expected, container.path)
        if final:
            target["resources"] = final
        elif "resources" in target:
            target["resources"] = {}
        found = yn.get(container.node, "resources")
        if found is None:
            if final:
                _add(sp, container.node, [("resources", final)])
            continue
        key, res = found
        if yn.has_anchor_or_alias(mf.text, res, key) or not isinstance(res, MappingNode):
            whole[id(container.node)] = (container.node, final)
            changed_nodes.add(id(res))
            continue
        for section in SECTIONS:
            section_changes = {r: v for (s, r), v in change.items() if s == section}
            if section_changes:
                _edit_section(sp, res, section, section_changes, final.get(section))
    # Containers that share an anchored resources node with a rewritten one are written out
    # with their own (unchanged) values, so that dropping the anchor changes nobody else.
    if whole:
        for other in _all_containers(mf):
            found = yn.get(other.node, "resources")
            if found and id(other.node) not in whole and _shares(found[1], changed_nodes):
                whole[id(other.node)] = (other.node, _get_path(data, other.path).get("resources") or {})
        for node, final in whole.values():
            _replace_whole(sp, node, final)
    new_text = sp.result()
    _verify(mf, new_text, expected)
    return new_text


def _shares(node: Node, ids: set[int]) -> bool:
    if id(node) in ids:
        return True
    if isinstance(node, MappingNode):
        return any(_shares(v, ids) for _, v in node.value)
    return False


def _all_containers(mf: ManifestFile) -> list[Container]:
    return [c for w in mf.workloads for c in w.containers]


def _normalise(value: Any) -> Any:
    """Quantities may be written as numbers or strings: compare them as text."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _verify(mf: ManifestFile, new_text: str, expected: list) -> None:
    try:
        parse_text(mf.path, new_text)
        got = list(YAML(typ="safe", pure=True).load_all(new_text))
    except Exception as exc:  # the splice broke the YAML: a bug, the file is left untouched
        raise EditError(f"{mf.path}: the edited text does not parse ({exc}); file left untouched") from exc
    for container in _all_containers(mf):
        # an emptied resources block may be written `{}` or left out: both mean no resources
        for doc in (got, expected):
            target = _get_path(doc, container.path)
            if target.get("resources") in ({}, None):
                target.pop("resources", None)
    if _normalise(got) != _normalise(expected):
        raise EditError(f"{mf.path}: the edit would change more than resources; file left untouched")
