"""The DB's own storage failing: a full disk, a read-only file or folder, a DB from a newer
capplan. Each is one clear line and a non-bug exit code; nothing half-written (the DB still
opens, holds whole chunks only, and a later run on a healthy disk completes it); a newer schema
is left byte-for-byte untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

from capplan import store
from tests.reliability._runner import ROOT, integrity, snapshot
from tests.reliability.conftest import W_START, collect_args
from tests.reliability.test_kill import _check_after_kill, _check_equal

SAMPLE_DIR = ROOT / "data" / "samples" / "cluster"
NOBODY = 65534


def _one_line(run, label: str) -> str:
    lines = [line for line in run.err.splitlines() if line.strip() and "warning:" not in line]
    assert "Traceback" not in run.err, f"{label}: {run.err}"
    assert len(lines) == 1 and lines[0].startswith("capplan: "), f"{label}: {run.err!r}"
    return lines[0]


@pytest.fixture()
def small_disk(tmp_path):
    """A factory: a folder on a tmpfs of `size` bytes (root, mount allowed), else None."""
    mounts: list[Path] = []

    def make(size: int) -> Path | None:
        folder = Path(tempfile.mkdtemp(prefix="capplan-full-"))
        pages = (size + 4095) // 4096 * 4096
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={pages}", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            folder.rmdir()
            return None
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _full_disk_run(forkserver, small_disk, db_source: Path | None, args_for, room: int, tmp_path: Path):
    """Run with only `room` bytes to spare: on a tmpfs when it can be mounted, else under
    RLIMIT_FSIZE. Returns (run, db path)."""
    size = db_source.stat().st_size if db_source else 0
    folder = small_disk(size + room)
    limits = {}
    if folder is None:
        folder = tmp_path / "limited"
        folder.mkdir()
        limits = {"fsize": size + room}
    db = folder / "db.duckdb"
    if db_source:
        shutil.copy(db_source, db)
    return forkserver.run(args_for(db), **limits), db


@pytest.mark.slow
def test_collect_on_a_full_disk_fails_clearly_and_keeps_whole_chunks(rel_prom, forkserver, reference, half_db,
                                                                     small_disk, tmp_path) -> None:
    run, db = _full_disk_run(forkserver, small_disk, half_db, lambda d: collect_args(rel_prom.url, d),
                             room=300_000, tmp_path=tmp_path)
    assert run.code not in (0, 1), f"exit {run.code}: {run.err}"
    line = _one_line(run, "collect on a full disk")
    assert any(w in line.lower() for w in ("space", "too large", "disk")), line
    # Nothing half-written: the DB opens and holds whole chunks only.
    saved = tmp_path / "saved.duckdb"
    shutil.copy(db, saved)
    for extra in db.parent.glob(db.name + ".wal"):
        shutil.copy(extra, tmp_path / ("saved.duckdb.wal"))
    _check_after_kill(saved, reference, "full disk")
    # On a healthy disk the next run completes it.
    again = forkserver.run(collect_args(rel_prom.url, saved))
    assert again.code == 0, again.err
    _check_equal(saved, reference, "after the full disk")


@pytest.mark.slow
def test_import_on_a_full_disk_fails_clearly_and_can_be_redone(forkserver, small_disk, sample_db_readonly,
                                                               tmp_path) -> None:
    run, db = _full_disk_run(forkserver, small_disk, None,
                             lambda d: ["import", str(SAMPLE_DIR), "--db", str(d)], room=1_500_000, tmp_path=tmp_path)
    assert run.code not in (0, 1), f"exit {run.code}: {run.err}"
    line = _one_line(run, "import on a full disk")
    assert any(w in line.lower() for w in ("space", "too large", "disk")), line
    saved = tmp_path / "saved.duckdb"
    if db.exists():
        shutil.copy(db, saved)
        if db.with_name(db.name + ".wal").exists():
            shutil.copy(db.with_name(db.name + ".wal"), tmp_path / "saved.duckdb.wal")
        assert integrity(saved) == {"duplicate_samples": 0, "duplicate_series": 0, "orphan_samples": 0}
    again = forkserver.run(["import", str(SAMPLE_DIR), "--db", str(saved)])
    assert again.code == 0, again.err
    assert snapshot(saved)["usage"] == snapshot(sample_db_readonly)["usage"]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _read_only_place(source: Path, folder_writable: bool) -> tuple[Path, list[Path]]:
    """A copy of `source` that capplan cannot write. Root ignores file modes, so as root the
    file (or its whole folder) is bind-mounted read-only; otherwise mode 0444 / 0555 does it.
    Returns the DB path and the mounts to undo."""
    folder = Path(tempfile.mkdtemp(prefix="capplan-ro-"))
    db = folder / "db.duckdb"
    shutil.copy(source, db)
    if os.geteuid() != 0:
        db.chmod(0o444)
        folder.chmod(0o777 if folder_writable else 0o555)
        return db, []
    target = db if folder_writable else folder
    if not (_mount("--bind", str(target), str(target)) and _mount("-o", "remount,ro,bind", str(target))):
        subprocess.run(["umount", str(target)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip("running as root without mount privileges: nothing can make a file read-only for root")
    return db, [target]


def _undo(db: Path, mounts: list[Path]) -> None:
    for target in mounts:
        subprocess.run(["umount", str(target)], capture_output=True)
    db.parent.chmod(0o755)
    shutil.rmtree(db.parent, ignore_errors=True)


@pytest.mark.parametrize("folder_writable", [True, False], ids=["file-read-only", "folder-read-only"])
def test_read_only_db_is_a_clear_refusal_and_stays_untouched(folder_writable, rel_prom, forkserver, half_db,
                                                            sample_db_readonly) -> None:
    for label, source, args_for in (
        ("collect", half_db, lambda d: collect_args(rel_prom.url, d)),
        ("import", sample_db_readonly, lambda d: ["import", str(SAMPLE_DIR), "--db", str(d)]),
    ):
        db, mounts = _read_only_place(source, folder_writable)
        try:
            before = db.read_bytes()
            run = forkserver.run(args_for(db))
            assert run.code == 4, f"{label}: exit {run.code}: {run.err}"
            line = _one_line(run, label)
            assert any(w in line.lower() for w in ("read-only", "read only", "permission", "cannot")), line
            assert db.read_bytes() == before, f"{label}: the read-only DB changed"
            # Reading still works where writing cannot.
            if label == "import":
                nodes = forkserver.run(["nodes", "--db", str(db), "--format", "csv"])
                assert nodes.code == 0, nodes.err
                assert nodes.out.startswith("node,")
        finally:
            _undo(db, mounts)


@pytest.fixture()
def newer_db(sample_db_readonly, tmp_path) -> Path:
    db = tmp_path / "newer.duckdb"
    shutil.copy(sample_db_readonly, db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE schema_version SET version = ?", [store.SCHEMA_VERSION + 100])
    con.execute("CHECKPOINT")
    con.close()
    return db


def test_newer_schema_is_exit_4_and_untouched_by_every_command(newer_db, rel_prom, forkserver) -> None:
    before = newer_db.read_bytes()
    commands = {
        "collect": collect_args(rel_prom.url, newer_db, "--start", W_START.isoformat()),
        "import": ["import", str(SAMPLE_DIR), "--db", str(newer_db)],
        "nodes": ["nodes", "--db", str(newer_db)],
        "report": ["report", "--db", str(newer_db)],
        "eviction": ["eviction", "--db", str(newer_db)],
    }
    for name, args in commands.items():
        run = forkserver.run(args)
        assert run.code == 4, f"{name}: exit {run.code}: {run.err}"
        line = _one_line(run, name)
        assert "newer" in line and "upgrade" in line, line
        assert newer_db.read_bytes() == before, f"{name} changed a newer-schema DB"
    assert not newer_db.with_name(newer_db.name + ".wal").exists()


@pytest.mark.slow
def test_newer_schema_serve_refuses_or_stays_unready_and_untouched(newer_db, tmp_path) -> None:
    import signal
    import time
    import urllib.error
    import urllib.request

    from tests.reliability._prom import free_port

    before = newer_db.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CAPPLAN_DEBUG": ""}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "capplan", "serve", "--db", str(newer_db), "--port", str(port),
                             "--host", "127.0.0.1", "--termination-log", str(tmp_path / "term")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                    body = (resp.status, resp.read().decode())
            except urllib.error.HTTPError as err:
                body = (err.code, err.read().decode())
            except OSError:
                time.sleep(0.2)
                continue
            break
        if proc.poll() is not None:
            # Refusing to start is fine: exit 4, one line.
            assert proc.returncode == 4, proc.stderr.read()
        else:
            # Serving is fine too, as long as it is not ready and says why.
            assert body is not None and body[0] == 503 and "newer" in body[1], body
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert newer_db.read_bytes() == before
