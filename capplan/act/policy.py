"""The `capplan check` policy: which rules run, how severe a finding is, and each threshold.
Defaults here; a YAML file (`--policy FILE`, format in docs/patch.md) overrides any of them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from capplan.errors import BadInputError

SEVERITIES = ("off", "notice", "warning", "error")
LEVEL = {name: i for i, name in enumerate(SEVERITIES)}

# rule -> default settings. Thresholds are starting points a team tunes in its policy file:
# the 25% request margin and the 3x waste factor sit beside KRR's severity steps (a change of
# 25% of a typical request is its "warning"), the 10% memory-limit margin is the headroom the
# `auto` strategy keeps above a peak (docs/recommend.md).
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    # static (manifests only)
    "missing-requests": {"severity": "error"},
    "missing-memory-limit": {"severity": "warning"},
    "limit-below-request": {"severity": "error"},
    "best-effort-protected": {"severity": "error", "namespaces": ["kube-system"]},
    "cpu-limit-ratio": {"severity": "warning", "min_ratio": 1.0},
    "limit-request-ratio": {"severity": "warning", "max_ratio": None},
    # usage (with a database)
    "memory-limit-below-peak": {"severity": "error", "margin": 0.10},
    "request-below-p95": {"severity": "warning", "margin": 0.25},
    "request-waste": {"severity": "warning", "factor": 3.0},
    "no-usage-data": {"severity": "notice"},
}
NUMBER_KEYS = {"min_ratio", "max_ratio", "margin", "factor"}


@dataclass
class Policy:
    rules: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_RULES))
    fail_on: str = "error"
    source: str = "defaults"

    def severity(self, rule: str) -> str:
        return str(self.rules[rule]["severity"])

    def on(self, rule: str) -> bool:
        return self.severity(rule) != "off"

    def get(self, rule: str, key: str) -> Any:
        return self.rules[rule].get(key)

    def fails(self, severity: str) -> bool:
        return LEVEL[severity] >= LEVEL[self.fail_on]


def _line(node: Any, key: Any) -> str:
    try:
        line = node.lc.key(key)[0] + 1
        return f":{line}"
    except (AttributeError, KeyError, TypeError):
        return ""


def load_policy(path: Path | None) -> Policy:
    """The defaults, overridden by the file at `path` (BadInputError naming file and line when
    it holds something capplan does not know)."""
    policy = Policy()
    if path is None:
        return policy
    try:
        data = YAML().load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise BadInputError(f"{where}: malformed YAML: {exc.problem}") from exc
    except YAMLError as exc:
        raise BadInputError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return policy
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a policy is a mapping with `rules` and `fail_on`")
    policy.source = str(path)
    for key in data:
        if key not in ("rules", "fail_on"):
            raise BadInputError(f"{path}{_line(data, key)}: unknown policy key {key!r} (rules, fail_on)")
    if "fail_on" in data:
        if data["fail_on"] not in ("notice", "warning", "error"):
            raise BadInputError(f"{path}{_line(data, 'fail_on')}: fail_on must be notice, warning or error")
        policy.fail_on = data["fail_on"]
    rules = data.get("rules") or {}
    if not isinstance(rules, dict):
        raise BadInputError(f"{path}{_line(data, 'rules')}: rules must be a mapping of rule names")
    for name, settings in rules.items():
        if name not in DEFAULT_RULES:
            raise BadInputError(f"{path}{_line(rules, name)}: unknown rule {name!r} "
                                f"(rules: {', '.join(DEFAULT_RULES)})")
        if isinstance(settings, str):   # `rule: off` or `rule: warning`
            settings = {"severity": settings}
        if settings is False:           # YAML 1.1 readers turn a bare off into false
            settings = {"severity": "off"}
        if not isinstance(settings, dict):
            raise BadInputError(f"{path}{_line(rules, name)}: {name} must be a severity or a mapping")
        for key, value in settings.items():
            where = f"{path}{_line(settings, key)}"
            if key == "severity":
                if value not in SEVERITIES:
                    raise BadInputError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, not {value!r}")
            elif key == "namespaces" and key in DEFAULT_RULES[name]:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise BadInputError(f"{where}: namespaces must be a list of names (or patterns)")
                value = list(value)
            elif key in NUMBER_KEYS and key in DEFAULT_RULES[name]:
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                    raise BadInputError(f"{where}: {key} must be a non-negative number, not {value!r}")
            else:
                known = ", ".join(DEFAULT_RULES[name])
                raise BadInputError(f"{where}: {name} has no setting {key!r} ({known})")
            policy.rules[name][key] = value
    return policy
