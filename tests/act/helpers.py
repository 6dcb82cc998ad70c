"""Test-side reimplementations, independent of capplan: a small Kubernetes quantity parser and
formatter, the documented patch rule, and the resources spans of a YAML text (PyYAML, a second
YAML parser)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "tests" / "data" / "manifests"
KEYS = {("requests", "cpu"): "cpu_request", ("limits", "cpu"): "cpu_limit",
        ("requests", "memory"): "memory_request", ("limits", "memory"): "memory_limit"}
POD_SPEC = {"Deployment": ["spec", "template", "spec"], "StatefulSet": ["spec", "template", "spec"],
            "DaemonSet": ["spec", "template", "spec"], "Job": ["spec", "template", "spec"],
            "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"], "Pod": ["spec"]}


def parse_q(text) -> Decimal:
    """A quantity as an exact decimal (only the suffixes the test data uses)."""
    s = str(text)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("m", Decimal("0.001"))):
        if s.endswith(suffix):
            return Decimal(s[: -len(suffix)]) * factor
    return Decimal(s)


def cpu_text(cores: Decimal) -> str:
    millis = int((cores * 1000).to_integral_value(rounding=ROUND_CEILING))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_text(value: Decimal) -> str:
    mib = int((value / 2**20).to_integral_value(rounding=ROUND_CEILING))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def workloads(docs: list) -> list[tuple[dict, str]]:
    """(object, kind) of every workload in loaded documents (List items included)."""
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "List":
            out.extend((item, item["kind"]) for item in doc["items"] if item.get("kind") in POD_SPEC)
        elif doc.get("kind") in POD_SPEC:
            out.append((doc, doc["kind"]))
    return out


def containers(obj: dict, kind: str) -> list[dict]:
    spec = obj
    for step in POD_SPEC[kind]:
        spec = spec[step]
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def expected_values(current: dict, row: dict, min_change: float = 0.10) -> dict:
    """The patch rule as docs/patch.md states it, from the recommend CSV row: round up (CPU to
    the millicore, memory to the MiB), keep a value that moves by less than min_change of
    itself, then raise a limit below its request to the request. Values as exact decimals;
    None = unset."""
    out = {}
    for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
        old = current.get(key)
        cell = row[f"{key}_recommended"]
        if cell == "":
            new = None
        else:
            text = cpu_text(Decimal(cell)) if key.startswith("cpu") else memory_text(Decimal(cell))
            new = parse_q(text)
        if old is not None and new is not None and (new == old or abs(new - old) / old < Decimal(str(min_change))):
            new = old
        out[key] = new
    for res in ("cpu", "memory"):
        if out[f"{res}_request"] is not None and out[f"{res}_limit"] is not None \
                and out[f"{res}_limit"] < out[f"{res}_request"]:
            out[f"{res}_limit"] = out[f"{res}_request"]
    return out


def current_values(container: dict) -> dict:
    res = container.get("resources") or {}
    out = {}
    for (section, resource), key in KEYS.items():
        value = (res.get(section) or {}).get(resource)
        out[key] = parse_q(value) if value is not None else None
    return out


def outside_resources(text: str) -> str:
    """The text with every container's `resources` entry cut out (found with PyYAML's
    composer, not ruamel), and lines left holding only blanks dropped."""
    spans = []
    for doc in yaml.compose_all(text):
        if doc is None:
            continue
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == "resources" and _in_container(node):
                        end = v.end_mark.index  # a block ends at the next token: not its indentation
                        while end > k.start_mark.index and text[end - 1] in " \n":
                            end -= 1
                        spans.append((k.start_mark.index, end))
                    else:
                        stack.append(v)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
    out = text
    for start, end in sorted(spans, reverse=True):
        out = out[:start] + out[end:]
    return "\n".join(line for line in out.split("\n") if line.strip())


def _in_container(node: yaml.MappingNode) -> bool:
    keys = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return "name" in keys and "image" in keys
