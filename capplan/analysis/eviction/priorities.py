"""Pod priorities: PriorityClass values from a file or `--priority NAME=VALUE`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from capplan.analysis.qos import (
    BUILTIN_PRIORITY_CLASSES,
)
from capplan.errors import BadInputError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass
class PriorityMap:
    """PriorityClass name -> value, and the globalDefault value for pods without a class."""

    values: dict[str, int] = field(default_factory=lambda: dict(BUILTIN_PRIORITY_CLASSES))
    global_default: int | None = None

    def resolve(self, priority_class: str | None) -> tuple[int, bool]:
        """(priority, known) of a pod's class: the admission plugin sets spec.priority from the
        class, or the globalDefault class, or 0 (plugin/pkg/admission/priority)."""
        if not priority_class:
            return (self.global_default if self.global_default is not None else 0), True
        if priority_class in self.values:
            return self.values[priority_class], True
        return 0, False


def _int32(value: object, what: str, allow_text: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not allow_text):
        raise BadInputError(f"{what}: priority value {value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise BadInputError(f"{what}: priority value {value!r} is not an integer") from None
    if not INT32_MIN <= number <= INT32_MAX:
        raise BadInputError(f"{what}: priority value {number} is outside int32")
    return number


def parse_priority_classes(text: str, source: str = "priority classes") -> PriorityMap:
    """Parse `kubectl get priorityclasses -o json` (a List with `items`), one PriorityClass
    object, or a JSON list of them, into a PriorityMap (built-in classes included)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and "items" in data:
        items = data["items"]
    elif isinstance(data, dict):
        items = [data]
    else:
        items = data
    if not isinstance(items, list):
        raise BadInputError(f"{source}: expected a PriorityClass list (kubectl get priorityclasses -o json)")
    result = PriorityMap()
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict) or "value" not in item:
            raise BadInputError(f"{source}: item {index} is not a PriorityClass (needs metadata.name and value)")
        name = item["metadata"].get("name")
        if not isinstance(name, str) or not name:
            raise BadInputError(f"{source}: item {index} has no metadata.name")
        value = _int32(item["value"], f"{source}: {name}")
        result.values[name] = value
        if item.get("globalDefault") is True:
            result.global_default = value
    return result


def load_priority_map(path: str | Path | None = None, overrides: list[str] | None = None) -> PriorityMap:
    """Priorities from a `kubectl get priorityclasses -o json` file and NAME=VALUE overrides
    (which win). Bad input raises BadInputError (exit 4)."""
    result = PriorityMap()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise BadInputError(f"cannot read priority classes file {p}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise BadInputError(f"priority classes file {p} is not text (expected JSON)") from None
        result = parse_priority_classes(text, str(p))
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BadInputError(f"--priority {item!r}: expected NAME=VALUE, e.g. web-critical=1000")
        result.values[name.strip()] = _int32(value.strip(), f"--priority {item!r}", allow_text=True)
    return result
