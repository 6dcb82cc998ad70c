"""A warm process that forks `capplan` CLI runs, so a kill test pays the ~3 s of imports once.

Each child is a real, separate `capplan` process running the same `app` the console script runs
(its own PID, file descriptors, DuckDB handles and locks); only the interpreter start-up and the
imports are shared, done before any work, connection or thread pool exists. The protocol is one
JSON line per job on stdin ({"args": [...], "out": path, "err": path, "env": {...}}), answered with
`pid N` when the child starts and, whenever it ends, `exit N CODE` (CODE negative: killed by that
signal). Several children may run at once.
"""

from __future__ import annotations

import json
import os
import sys


def _serve() -> None:
    import importlib
    import threading

    # The CLI imports each command's modules when it runs (issue 14: a fast `capplan --help`), so
    # load those here too: a signal must find the child inside its work, not importing.
    for module in ("capplan.cli", "capplan.collect", "capplan.importer", "capplan.store"):
        importlib.import_module(module)
    from capplan.cli import app

    out_lock = threading.Lock()

    def say(text: str) -> None:
        with out_lock:
            print(text, flush=True)

    def reap(pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        say(f"exit {pid} {os.waitstatus_to_exitcode(status)}")

    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                for fd, path in ((1, job["out"]), (2, job["err"])):
                    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(f, fd)
                    os.close(f)
                sys.stdout = os.fdopen(1, "w", buffering=1)
                sys.stderr = os.fdopen(2, "w", buffering=1)
                if job.get("fsize"):
                    # A file-size limit stands in for a full disk where tmpfs cannot be mounted:
                    # writes past it fail with EFBIG instead of killing the process (SIGXFSZ).
                    import resource
                    import signal

                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], job["fsize"]))
                if job.get("uid") is not None:
                    os.setgroups([])
                    os.setgid(job["uid"])
                    os.setuid(job["uid"])
                os.environ.update(job.get("env", {}))
                for key in job.get("unset", []):
                    os.environ.pop(key, None)
                sys.argv = ["capplan", *job["args"]]
                try:
                    app(job["args"], prog_name="capplan")
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            except BaseException:  # never return into the server loop in a child
                import traceback

                traceback.print_exc()
                os._exit(70)
        say(f"pid {pid}")
        threading.Thread(target=reap, args=(pid,), daemon=True).start()


if __name__ == "__main__":
    _serve()
