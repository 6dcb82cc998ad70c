"""Helpers over ruamel.yaml's composed node graph (nodes keep their source marks, which is what
lets capplan edit a file by splicing text instead of re-serialising it)."""

from __future__ import annotations

import re

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MERGE_TAG = "tag:yaml.org,2002:merge"
NULL_TAG = "tag:yaml.org,2002:null"
_ALIAS_RE = re.compile(r"\*[^\s,\[\]{}]+")


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG)


def entries(node: MappingNode) -> list[tuple[Node, Node]]:
    """The explicit (key, value) pairs of a mapping, merge keys excluded."""
    return [(k, v) for k, v in node.value if k.tag != MERGE_TAG]


def has_merge(node: MappingNode) -> bool:
    return any(k.tag == MERGE_TAG for k, _ in node.value)


def get(node: Node | None, key: str) -> tuple[Node, Node] | None:
    """The (key node, value node) for `key` in a mapping, following `<<` merge keys the way
    YAML 1.1 defines them (explicit keys win, then merged maps in order)."""
    if not isinstance(node, MappingNode):
        return None
    for k, v in entries(node):
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    for k, v in node.value:
        if k.tag == MERGE_TAG:
            for source in (v.value if isinstance(v, SequenceNode) else [v]):
                found = get(source, key)
                if found is not None:
                    return found
    return None


def value(node: Node | None, key: str) -> Node | None:
    found = get(node, key)
    return found[1] if found else None


def scalar(node: Node | None, key: str) -> str | None:
    """The text of a scalar value, None when absent, null or not a scalar."""
    v = value(node, key)
    if isinstance(v, ScalarNode) and not is_null(v):
        return str(v.value)
    return None


def is_alias_use(key: Node, val: Node) -> bool:
    """A value written as `*name` is the anchored node itself, whose marks lie before its key."""
    return val.start_mark.index < key.end_mark.index


def alias_span(text: str, key: Node) -> tuple[int, int]:
    """Where the `*name` after `key:` is written."""
    match = _ALIAS_RE.search(text, key.end_mark.index)
    if match is None:  # pragma: no cover - the composer resolved an alias, so it is there
        raise ValueError("alias not found")
    return match.start(), match.end()


def content_end(text: str, node: Node) -> int:
    """The index just after the last character of `node`'s own text (a block collection's
    end mark lies at the next token, past comments and blank lines)."""
    if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
        end = node.end_mark.index
        return end
    if isinstance(node, MappingNode) and node.value:
        key, val = node.value[-1]
        return alias_span(text, key)[1] if is_alias_use(key, val) else content_end(text, val)
    if isinstance(node, SequenceNode) and node.value:
        last = node.value[-1]
        if last.start_mark.index < node.start_mark.index:  # `- *alias` as the last item
            match = _ALIAS_RE.search(text, node.start_mark.index)
            return match.end() if match else node.end_mark.index
        return content_end(text, last)
    return node.end_mark.index


def line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def after_line(text: str, index: int) -> int:
    """The index after the newline ending the line that holds `index - 1` (a block scalar's
    end already sits at a line start)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def has_anchor_or_alias(text: str, node: Node, parent_key: Node | None = None) -> bool:
    """Whether an anchor, alias or merge key appears anywhere in `node`'s subtree."""
    if getattr(node, "anchor", None):
        return True
    if parent_key is not None and is_alias_use(parent_key, node):
        return True
    if isinstance(node, MappingNode):
        if has_merge(node):
            return True
        return any(has_anchor_or_alias(text, v, k) for k, v in node.value)
    if isinstance(node, SequenceNode):
        return any(getattr(v, "anchor", None) or v.start_mark.index < node.start_mark.index
                   or has_anchor_or_alias(text, v) for v in node.value)
    return False
