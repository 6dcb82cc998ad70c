"""Options shared by the commands, and the one place errors become exit codes."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard, TypeVar

import typer

from capplan.errors import BadInputError, CapplanError, UsageError
from capplan.quantity import parse_duration

if TYPE_CHECKING:
    from capplan.analysis.fleet import FleetRuns

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="DuckDB file (default $CAPPLAN_DB, else ./capplan.duckdb).", show_default=False),
]
FormatOption = Annotated[str, typer.Option("--format", "-f", metavar="[table|csv|json]", help="table, csv or json.")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")]
WindowOption = Annotated[str, typer.Option("--window", help="History window ending at the newest sample.")]
NamespaceOption = Annotated[
    list[str] | None, typer.Option("--namespace", "-n", help="Only these namespaces (repeatable).")
]
EndOption = Annotated[
    str | None,
    typer.Option("--end", help="End the window at the newest sample at or before T (ISO 8601, Unix seconds, "
                 "or a duration back from now); default the newest sample.", show_default=False),
]
NodeOption = Annotated[list[str] | None, typer.Option("--node", help="Only these nodes (repeatable).")]
ActClusterOption = Annotated[
    str | None,
    typer.Option("--cluster", help="The cluster to act on (needed when the database holds several).", show_default=False),
]
# store.DEFAULT_CLUSTER, not imported from there: `capplan --help` must not load DuckDB.
DEFAULT_CLUSTER = "default"
ClusterOption = Annotated[
    list[str] | None,
    typer.Option("--cluster", help="Only these clusters (repeatable; default every stored one). With more than one "
                 "stored, output starts with a cluster column.", show_default=False),
]
# capplan.engines.ENGINES, restated so `capplan --help` imports no engine.
EngineOption = Annotated[str, typer.Option(
    "--engine", metavar="[duckdb|spark]", help="Where the per-sample aggregates run: duckdb, or spark over --lake "
                                                "(docs/scale.md).")]
LakeOption = Annotated[str | None, typer.Option(
    "--lake", help="With --engine spark: the lake `capplan export-lake` wrote (a folder, or s3a://, gs://, hdfs:// "
                   "under spark-submit).", show_default=False)]

DEBUG = {"on": bool(os.environ.get("CAPPLAN_DEBUG"))}
# File-system failures that carry no file name but are still the user's environment.
_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}

F = TypeVar("F", bound=Callable[..., Any])


# What DuckDB says when the disk or the file system refuses a write (it raises its own errors).
_STORAGE_WORDS = ("No space left on device", "File too large", "Read-only file system", "Disk quota exceeded")


def _is_file_problem(exc: BaseException) -> TypeGuard[OSError]:
    """An OSError about a local file (not a network error, which the collector reports as 3)."""
    return isinstance(exc, OSError) and exc.errno is not None and bool(exc.filename or exc.errno in _FS_ERRNOS)


def _storage_problem(exc: BaseException) -> str | None:
    """The first line of a DuckDB error caused by a full disk or a read-only file system."""
    text = str(exc)
    if type(exc).__module__.startswith(("duckdb", "_duckdb")) and any(w in text for w in _STORAGE_WORDS):
        return text.splitlines()[0]
    return None


def check_format(fmt: str, allowed: tuple[str, ...] | None = None) -> str:
    """Validate `--format` (default: the formats capplan.render writes); wrong usage is exit 2."""
    if allowed is None:
        from capplan.render import FORMATS  # here, not at import: `capplan --help` must not load polars

        allowed = FORMATS
    if fmt not in allowed:
        raise UsageError(f"--format must be one of {', '.join(allowed)}, not {fmt!r}")
    return fmt


T = TypeVar("T")


def option_value(option: str, parse: Callable[..., T], *args: Any) -> T:
    """Parse an option's value: one that makes no sense is wrong usage (exit 2), never bad input
    (exit 4, which is for the content of files and data sources; docs/reference.md)."""
    try:
        return parse(*args)
    except BadInputError as exc:
        text = str(exc)
        raise UsageError(text if text.startswith(option) else f"{option}: {text}") from None


def window_option(text: str, option: str = "--window") -> timedelta:
    """Parse a duration option (`--window 14d`); a value that is none is wrong usage (exit 2).
    The check is capplan.options.duration, shared with the HTTP API."""
    from capplan import options

    return options.duration(text, option, options.as_given)


def time_option(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """A time option as naive UTC: ISO 8601 (naive = UTC), Unix seconds, or a duration back from
    now (`30d`). A value that is none of these is wrong usage (exit 2)."""
    raw = text.strip()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    try:
        if raw.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), tz=UTC).replace(tzinfo=None)
        if raw and raw[-1] in "smhdw" and raw[:-1].replace(".", "", 1).isdigit():
            return now - parse_duration(raw)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, BadInputError):
        raise UsageError(f"{option}: not an ISO 8601 time, Unix seconds or a duration: {raw[:60]!r}") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def fail(err: CapplanError) -> None:
    """Print one line for a CapplanError and exit with its code."""
    # One line even when the message quotes a value holding a newline.
    message = str(err).replace("\r", "\\r").replace("\n", "\\n")
    typer.echo(f"capplan: {message}", err=True)
    raise typer.Exit(err.exit_code)


# The rollup note of the running command when it read it on its own connection (keep_rollup_note):
# handle_errors then says it without opening the database again (a read-only open is a connect,
# the version check and the macros: ~0.05 s of CPU of `recommend` at the bench's M, issue 15).
_ROLLUP_NOTE: dict[str, str | None] = {}


def keep_rollup_note(con: Any, window: str) -> None:
    """Read the rollup note of `--window` on the command's connection (outside any cluster scope,
    as _say_if_rollups' own open reads it), for handle_errors to say after the command."""
    from capplan.rollup import rollup_note

    _ROLLUP_NOTE["note"] = rollup_note(con, window_option(window))


def _say_if_rollups(db: Path | None, window: str) -> None:
    """An analysis whose --window reaches past the raw samples read hourly/daily summaries: say so
    on stderr (CSV and JSON on stdout stay as they are)."""
    from capplan import store
    from capplan.rollup import rollup_note

    if "note" in _ROLLUP_NOTE:  # read by the command itself
        note = _ROLLUP_NOTE.pop("note")
        if note:
            typer.echo(f"capplan: {note}", err=True)
        return
    try:
        con = store.open_db(db, read_only=True)
    except CapplanError:
        return
    try:
        note = rollup_note(con, window_option(window))
    finally:
        con.close()
    if note:
        typer.echo(f"capplan: {note}", err=True)


def handle_errors(func: F) -> F:
    """Turn CapplanError into one line on stderr and its exit code; anything else is exit 1
    with one line (the traceback only with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _ROLLUP_NOTE.clear()
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
            if isinstance(kwargs.get("window"), str):
                _say_if_rollups(kwargs.get("db"), kwargs["window"])
            return result
        except CapplanError as err:
            if DEBUG["on"]:
                import traceback

                traceback.print_exc()
            fail(err)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # `capplan report | head -1`: the reader is done, which is not an error. Python flushes
            # stdout again at exit; point it at /dev/null so that flush cannot fail either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:  # a bug: say so in one line
            if DEBUG["on"]:
                import traceback

                traceback.print_exc()
            if _is_file_problem(exc):
                # A file the user named cannot be read or written (missing folder, a directory,
                # read-only, disk full): bad input (4), one line naming the file and the cause.
                where = f" {exc.filename}" if exc.filename else ""
                typer.echo(f"capplan: cannot use{where}: {exc.strerror or exc}", err=True)
                raise typer.Exit(4) from exc
            storage = _storage_problem(exc)
            if storage:
                # The database could not be written (its transaction was rolled back): exit 4.
                typer.echo(f"capplan: cannot write the database: {storage}", err=True)
                raise typer.Exit(4) from exc
            typer.echo(f"capplan: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", err=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def end_option(text: str | None) -> datetime | None:
    """`--end T` as naive UTC (None: the newest sample)."""
    return time_option(text, "--end") if text is not None else None


def cluster_name(name: str) -> str:
    """A `--cluster` value checked (one that cannot name a cluster is wrong usage, exit 2)."""
    from capplan import store

    return option_value("--cluster", store.check_cluster_name, name)


def cluster_names(names: list[str] | None) -> list[str] | None:
    """Repeated `--cluster` values checked (None: every stored cluster)."""
    return [cluster_name(n) for n in names] if names else None


def fleet_run(con: Any, names: list[str] | None, analysis: Callable[[Any], T]) -> FleetRuns[T]:
    """capplan.analysis.fleet.run for a command: clusters without data are named on stderr."""
    from capplan.analysis import fleet

    runs = fleet.run(con, cluster_names(names), analysis)
    for name, why in runs.skipped:
        typer.echo(f"capplan: cluster {name} left out: {why}", err=True)
    return runs


def one_cluster(con: Any, names: list[str] | str | None, command: str) -> str | None:
    """The one cluster a command that acts on a cluster's objects (manifests, pods) works on: the
    store's only one, or the one `--cluster` names; with several stored, naming none (or more
    than one) is wrong usage. None for an empty store."""
    from capplan.analysis import fleet

    if isinstance(names, str):
        names = [names]
    stored, chosen = fleet.select(con, cluster_names(names))
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        return None
    raise UsageError(f"{command} acts on one cluster and the database holds {', '.join(stored)}: "
                     "name it with --cluster" if not names else f"{command} acts on one cluster: give one --cluster")


@contextlib.contextmanager
def one_cluster_scope(con: Any, names: list[str] | str | None, command: str) -> Iterator[str | None]:
    """`con` scoped to the one cluster a command acts on (see one_cluster); yields its name."""
    from capplan import store

    name = one_cluster(con, names, command)
    if name is None:
        yield None
        return
    with store.scope(con, name):
        yield name


@contextlib.contextmanager
def engine_scope(engine: str, lake: str | None) -> Iterator[None]:
    """Run the block's per-sample queries on `--engine` (Spark over `--lake`; DuckDB: as always)."""
    from capplan.engines import check_engine

    check_engine(engine, lake)
    if engine == "duckdb" or lake is None:
        yield
        return
    from capplan import store
    from capplan.engines.spark import SparkEngine

    spark_engine = SparkEngine(lake)
    try:
        with store.using_engine(spark_engine):
            yield
    finally:
        spark_engine.close()
