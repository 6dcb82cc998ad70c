"""`capplan serve`: HTTP API, `/metrics`, `/healthz`, `/readyz`, optional in-process collection."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import DbOption, WindowOption, handle_errors, window_option
from capplan.errors import CapplanError, UsageError


@app.command()
@handle_errors
def serve(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    window: WindowOption = "14d",
    max_staleness: Annotated[str, typer.Option(
        "--max-staleness", help="/readyz fails when the last finished collection is older (0: never).")] = "2h",
    collect_every: Annotated[str | None, typer.Option(
        "--collect-every", help="Collect on this schedule (e.g. 15m; each run a child `capplan collect`); needs --prometheus-url.")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus-url", envvar="CAPPLAN_PROMETHEUS_URL", help="Prometheus to collect from.")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="Bearer token file for Prometheus.")] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="CA bundle for Prometheus TLS.")] = None,
    insecure_skip_tls_verify: Annotated[bool, typer.Option(
        "--insecure-skip-tls-verify", help="Do not verify Prometheus' TLS certificate.")] = False,
    step: Annotated[str, typer.Option("--step", help="Collection resolution.")] = "60s",
    since: Annotated[str, typer.Option("--since", help="History to pull on the first collection.")] = "14d",
    shutdown_timeout: Annotated[str, typer.Option(
        "--shutdown-timeout", help="Longest drain on SIGTERM (keep below terminationGracePeriodSeconds).")] = "20s",
    termination_log: Annotated[Path, typer.Option(
        "--termination-log", help="Where to write the reason of an error exit, if writable.")] = Path("/dev/termination-log"),
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request to stderr.")] = False,
    collect_arg: Annotated[list[str] | None, typer.Option(
        "--collect-arg", help="Extra option for the scheduled `capplan collect` (repeatable), e.g. --collect-arg=--chunk=1h.")
    ] = None,
) -> None:
    """HTTP API (/api/v1/...), /metrics, /healthz and /readyz; SIGTERM shuts down gracefully."""
    from capplan import service

    try:
        # The scheduled collection's options are checked now, not at the first run.
        step_seconds = window_option(step, "--step").total_seconds()
        if step_seconds < 1 or step_seconds != int(step_seconds):
            raise UsageError(f"--step must be a whole number of seconds (e.g. 30s, 1m, 5m), not {step!r}")
        window_option(since, "--since")
        every = window_option(collect_every, "--collect-every") if collect_every else None
        if every is not None:
            if every.total_seconds() <= 0:
                raise UsageError("--collect-every must be longer than 0s")
            if not prometheus_url:
                raise UsageError("--collect-every needs --prometheus-url (or $CAPPLAN_PROMETHEUS_URL)")
        # The scheduled collection is `capplan collect` with these options; the token stays in its
        # file or in $CAPPLAN_PROMETHEUS_TOKEN (inherited), never on a command line.
        # The URL goes to the child through $CAPPLAN_PROMETHEUS_URL, not its argv: a password in it
        # would show in the process list.
        collect_args = ["--since", since, "--step", step]
        if token_file:
            collect_args += ["--token-file", str(token_file)]
        if ca_file:
            collect_args += ["--ca-file", str(ca_file)]
        if insecure_skip_tls_verify:
            collect_args.append("--insecure-skip-tls-verify")
        collect_args += list(collect_arg or [])
        options = service.ServeOptions(
            db=db, host=host, port=port, window=window_option(window),
            max_staleness=timedelta(0) if max_staleness.strip() == "0" else window_option(max_staleness, "--max-staleness"),
            collect_every=every,
            collect_args=collect_args, prometheus_url=prometheus_url,
            shutdown_timeout=window_option(shutdown_timeout, "--shutdown-timeout").total_seconds(),
            termination_log=termination_log, access_log=access_log,
        )
        code = service.run(options)
    except CapplanError as err:
        service.write_termination_log(termination_log, f"capplan serve: {err}")
        raise
    except Exception as exc:
        service.write_termination_log(termination_log, f"capplan serve: internal error: {type(exc).__name__}: {exc}")
        raise
    if code:
        raise typer.Exit(code)
