"""A minimal real-Prometheus runner for the reliability tests.

Used only where tests/promharness.py (the collector's harness) does not fit: a tiny TSDB of
hand-written series for the PromQL escaping checks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests import tools

PROMETHEUS = tools.path("prometheus") or "prometheus"
PROMTOOL = tools.path("promtool") or "promtool"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def om_escape(value: str) -> str:
    """OpenMetrics label-value escaping (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def backfill(text: str, data_dir: Path) -> None:
    """Write OpenMetrics `text` (without `# EOF`) into a TSDB at data_dir with promtool."""
    tools.require("promtool")
    src = data_dir.parent / f"{data_dir.name}.om"
    src.write_text(text.rstrip("\n") + "\n# EOF\n")
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", "--max-block-duration=162h",
         str(src), str(data_dir)],
        check=True, capture_output=True,
    )


class Prometheus:
    """A real prometheus process on 127.0.0.1:port over data_dir."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        tools.require("prometheus")
        cfg = self.data_dir.parent / f"{self.data_dir.name}.yml"
        cfg.write_text("global:\n  scrape_interval: 1h\n")
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir}",
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("prometheus did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def query(self, promql: str, at: float) -> list[dict]:
        """An instant query at unix time `at`; the result vector."""
        body = urllib.parse.urlencode({"query": promql, "time": str(at)}).encode()
        with urllib.request.urlopen(self.url + "/api/v1/query", data=body, timeout=10) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]
