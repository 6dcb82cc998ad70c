"""Option values without pydantic where typer's coercion would only pass them through.

typer 0.29 coerces every option value, even a default or an absent one, through a pydantic
TypeAdapter it builds per option on first use: importing pydantic and building the adapters of
`capplan collect`'s 21 options cost ~0.2 s of CPU per run (py-spy, `python -X importtime`,
issue 15's next-hour run: 2 processes, a 1.5 s target). The values capplan's options take are
plain strings, paths, numbers and lists of strings; for those this returns exactly what typer's
adapters return (the string itself, `pathlib.Path(value)` checked by typer's own path rules, a
default number unchanged, `int("12")` and `float("0.5")` for plain decimal digits), and hands
every other value (`1e3`, `abc`, a choice, a range-checked option) to typer's coercion, so
conversions and error messages stay typer's. Installed by capplan.cli; a typer without these internals is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

_MISSING = object()
_INT = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


def install() -> bool:
    """Put the fast path in front of typer's runtime coercion; False when this typer differs."""
    try:
        from typer import _coercion, core
        from typer._param_types import coerce_cli_path, routes_to_path
    except ImportError:
        return False
    found = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if found is None or base is None or getattr(found, "_capplan_fast", False):
        return False
    original: Callable[[Any], Any] = found

    def plain(annotation: Any, info: Any, value: Any) -> Any:
        """The value typer's adapter would return, or _MISSING when only typer can tell."""
        if info.parser is not None:
            return _MISSING
        if annotation is str:
            return value if isinstance(value, str) else _MISSING
        if annotation in (int, float):
            if info.min is not None or info.max is not None:
                return _MISSING
            # a default (already the right type, never a bool): passed through
            if type(value) is annotation:
                return value
            # plain decimal digits, which pydantic's lax mode reads as int() and float() do
            if isinstance(value, str) and (_INT if annotation is int else _DECIMAL).fullmatch(value):
                return annotation(value)
            return _MISSING
        if annotation is Path and routes_to_path(annotation, info) and not info.allow_dash and info.path_type is None:
            if isinstance(value, str | Path):
                # typer's own existence/kind checks, given a Path (it converts a str with pydantic)
                return _CoercePath(value, info)
            return _MISSING
        if get_origin(annotation) is list and isinstance(value, list | tuple):
            (item_type,) = get_args(annotation) or (Any,)
            items = [plain(item_type, info, v) for v in value]
            if any(i is _MISSING or isinstance(i, _CoercePath) for i in items):
                return _MISSING
            return items
        return _MISSING

    @dataclass(frozen=True)
    class _CoercePath:
        value: str | Path
        info: Any

    @dataclass(frozen=True)
    class FastRuntimeParam(base):  # type: ignore[misc, valid-type]
        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            got = plain(self.annotation, self.parameter_info, value)
            if isinstance(got, _CoercePath):
                return coerce_cli_path(Path(got.value), got.info, path_type=Path, param=param, ctx=ctx)
            if got is not _MISSING:
                return got
            return original(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        if descriptor.file_annotation is not None:
            return original(descriptor)
        return FastRuntimeParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation,
                                descriptor=descriptor)

    build_runtime_param._capplan_fast = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
    return True
