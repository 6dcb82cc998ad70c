"""`capplan serve`: HTTP API, `/metrics`, `/healthz`, `/readyz`, optional in-process collection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capplan import options as checked
from capplan.cli import app
from capplan.cli.common import DbOption, WindowOption, handle_errors
from capplan.errors import CapplanError, UsageError


@app.command()
@handle_errors
def serve(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0: every interface, as in a container).")] = "127.0.0.1",
    window: WindowOption = "14d",
    max_staleness: Annotated[str, typer.Option(
        "--max-staleness", help="/readyz fails when the last finished collection is older, or none was "
                                "recorded (an imported database); 0: no freshness check.")] = "2h",
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
    log_level: Annotated[str, typer.Option(
        "--log-level", help="debug, info, warning or error.")] = "info",
    auth_token_file: Annotated[Path | None, typer.Option(
        "--auth-token-file", help="Require `Authorization: Bearer TOKEN` (the file's content) on the API; "
                                  "/healthz, /readyz and /metrics stay open.")] = None,
    auth_metrics: Annotated[bool, typer.Option(
        "--auth-metrics", help="With --auth-token-file: require the token on /metrics too.")] = False,
    collect_arg: Annotated[list[str] | None, typer.Option(
        "--collect-arg", help="Extra option for the scheduled `capplan collect` (repeatable), e.g. --collect-arg=--chunk=1h.")
    ] = None,
) -> None:
    """HTTP API (/api/v1/...), /metrics, /healthz and /readyz; SIGTERM shuts down gracefully."""
    # Light modules only until the options are checked: a wrong option is refused at once.
    from capplan.serve.auth import read_token_file
    from capplan.serve.config import LOG_LEVELS, ServeOptions
    from capplan.serve.termination import write_termination_log

    try:
        # The scheduled collection's options are checked now (by the checks `capplan collect`
        # uses), not at the first run.
        checked.step_seconds(step)
        checked.duration(since, "since")
        every = checked.duration(collect_every, "collect_every") if collect_every else None
        if every is not None and not prometheus_url:
            raise UsageError("--collect-every needs --prometheus-url (or $CAPPLAN_PROMETHEUS_URL)")
        if log_level not in LOG_LEVELS:
            raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
        if auth_metrics and auth_token_file is None:
            raise UsageError("--auth-metrics needs --auth-token-file")
        # The scheduled collection is `capplan collect` with these options; the token stays in its
        # file or in $CAPPLAN_PROMETHEUS_TOKEN (inherited), never on a command line.
        collect_args = ["--since", since, "--step", step]
        if token_file:
            collect_args += ["--token-file", str(token_file)]
        if ca_file:
            collect_args += ["--ca-file", str(ca_file)]
        if insecure_skip_tls_verify:
            collect_args.append("--insecure-skip-tls-verify")
        collect_args += list(collect_arg or [])
        options = ServeOptions(
            db=db, host=host, port=port, window=checked.duration(window, "window"),
            max_staleness=checked.staleness(max_staleness),
            collect_every=every, collect_args=collect_args, prometheus_url=prometheus_url,
            shutdown_timeout_seconds=checked.duration(shutdown_timeout, "shutdown_timeout").total_seconds(),
            termination_log=termination_log, access_log=access_log, log_level=log_level,
            auth_token=read_token_file(auth_token_file) if auth_token_file else None, auth_metrics=auth_metrics,
        )
        from capplan.serve.runner import run

        code = run(options)
    except CapplanError as err:
        write_termination_log(termination_log, f"capplan serve: {err}")
        raise
    except Exception as exc:
        write_termination_log(termination_log, f"capplan serve: internal error: {type(exc).__name__}: {exc}")
        raise
    if code:
        raise typer.Exit(code)
