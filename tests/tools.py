"""The one way the tests find the programs they run for real.

`path(name)`: $CAPPLAN_<NAME>_BIN (e.g. CAPPLAN_PROMETHEUS_BIN), else the program on PATH, else None.
`missing(*names)`: why those programs cannot run here (None when they can), naming the Debian
package and the command that installs it.
`require(*names)`: the paths, or a skip with that reason. tests/conftest.py turns every skip into
a failure unless CAPPLAN_SKIP_INTEGRATION=1 is set (outside CI), so a missing program fails the
run instead of hiding the tests that need it. `make test` installs them first (.ci/need-tools).
"""

from __future__ import annotations

import os
import shutil

import pytest

# program -> Debian package (the same table as .ci/need-tools)
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "victoria-metrics": "victoria-metrics",
    "chromium": "chromium",
    "openssl": "openssl",
    "kubectl": "kubernetes-client",
    "tmux": "tmux",
}


def path(name: str) -> str | None:
    """Where program `name` is, or None."""
    override = os.environ.get(f"CAPPLAN_{name.upper().replace('-', '_')}_BIN")
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    return shutil.which(name)


def missing(*names: str) -> str | None:
    """Why one of `names` cannot run here (None when all can)."""
    absent = [n for n in names if path(n) is None]
    if not absent:
        return None
    packages = sorted({PACKAGES.get(n, n) for n in absent})
    return (f"{', '.join(absent)} not installed: apt-get install --no-install-recommends {' '.join(packages)} "
            f"(`make test` installs it when run as root)")


def require(*names: str) -> list[str]:
    """The paths of `names`; a skip naming the install command when one is missing."""
    reason = missing(*names)
    if reason:
        pytest.skip(reason)
    return [p for n in names if (p := path(n)) is not None]


def one(name: str) -> str:
    """The path of one program (a skip when it is missing)."""
    (found,) = require(name)
    return found
