"""Node taints and pod tolerations: parsing the stored taints, `--tolerate`, and whether a pod
with given tolerations may be scheduled on a node (the scheduler's TaintToleration filter)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from capplan.errors import BadInputError, UsageError

# Taint effects that keep a pod off a node at scheduling time: the scheduler's TaintToleration
# Filter only looks at these two (kubernetes/kubernetes pkg/scheduler/framework/plugins/
# tainttoleration/taint_toleration.go, `Filter`); PreferNoSchedule only scores.
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def parse_taints(text: str | None) -> list[dict[str, str]]:
    """The stored JSON list of taints ({"key", "value", "effect"}); [] when unset."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"node taints are not JSON: {text[:80]!r}") from exc
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []


def format_taints(text: str | None) -> str:
    """Taints as kubectl writes them: `key=value:Effect`, joined by `;`."""
    out = []
    for t in parse_taints(text):
        value = t.get("value")
        out.append(f"{t.get('key', '')}{'=' + value if value else ''}:{t.get('effect', '')}")
    return ";".join(out)


@dataclass(frozen=True)
class Toleration:
    """A toleration as `--tolerate` gives it: KEY, KEY=VALUE, KEY:EFFECT, KEY=VALUE:EFFECT, or
    `*` (tolerates everything, like an empty key with operator Exists). Without a value it
    matches any value (operator Exists); without an effect, any effect."""

    key: str
    value: str | None = None
    effect: str | None = None

    def tolerates(self, taint: dict[str, Any]) -> bool:
        """Kubernetes' ToleratesTaint (k8s.io/api core/v1 toleration.go) for Exists/Equal."""
        if self.effect and self.effect != taint.get("effect"):
            return False
        if self.key == "*":
            return True
        if self.key != taint.get("key"):
            return False
        return self.value is None or self.value == (taint.get("value") or "")


def parse_toleration(text: str) -> Toleration:
    """Parse `--tolerate`; UsageError (exit 2) when empty or malformed."""
    raw = text.strip()
    if not raw:
        raise UsageError("--tolerate needs a taint key (KEY, KEY=VALUE, KEY:EFFECT or *)")
    effect = None
    if ":" in raw:
        raw, effect = raw.rsplit(":", 1)
        if effect not in ("NoSchedule", "NoExecute", "PreferNoSchedule"):
            raise UsageError(f"--tolerate {text!r}: effect must be NoSchedule, NoExecute or PreferNoSchedule")
    key, value = (raw.split("=", 1) + [None])[:2] if "=" in raw else (raw, None)
    if not key:
        raise UsageError(f"--tolerate {text!r}: the taint key is empty")
    return Toleration(key=key, value=value, effect=effect)


def _taint_text(taint: dict[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key', '')}{'=' + value if value else ''}:{taint.get('effect', '')}"


def untolerated_taint(taints: list[dict[str, Any]], tolerations: Sequence[Toleration]) -> str | None:
    """The first NoSchedule/NoExecute taint no toleration matches (as `key=value:Effect`),
    or None when a pod with these tolerations may be scheduled on the node."""
    for taint in taints:
        if taint.get("effect") in BLOCKING_EFFECTS and not any(t.tolerates(taint) for t in tolerations):
            return _taint_text(taint)
    return None


def blocking_set(taints: list[dict[str, Any]]) -> frozenset[tuple[str, str, str]]:
    return frozenset((t.get("key", ""), t.get("value") or "", t.get("effect", ""))
                     for t in taints if t.get("effect") in BLOCKING_EFFECTS)

