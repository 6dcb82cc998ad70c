"""The reason of an error exit, where Kubernetes shows it (terminationMessagePath)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def write_termination_log(path: Path | None, message: str) -> None:
    """Leave a short reason at `path` (default /dev/termination-log, shown in the pod status);
    silent when the path is not writable (not in a container)."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        with open(path, "w") as fh:
            fh.write(message[:4000] + "\n")
