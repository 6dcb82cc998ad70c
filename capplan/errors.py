"""Errors that map to the exit codes of CONTRACT.md.

Every failure a user can cause or meet is one of these; the CLI prints `str(err)` as a single
line and exits with `err.exit_code`. Anything else is a bug (exit 1).
"""

from __future__ import annotations


class CapplanError(Exception):
    """Base class: a one-line message and a distinct exit code."""

    exit_code: int = 1


class UsageError(CapplanError):
    """Wrong usage of a command or option (exit 2)."""

    exit_code = 2


class SourceError(CapplanError):
    """The data source failed: unreachable, timed out, HTTP error after retries, auth (exit 3)."""

    exit_code = 3


class BadInputError(CapplanError):
    """Bad input data: unparsable quantity, malformed response or file, newer schema (exit 4)."""

    exit_code = 4


class LockedError(CapplanError):
    """Another collection holds the database lock (exit 5)."""

    exit_code = 5


class NoDataError(CapplanError):
    """No data for what was asked: empty database or window (exit 6)."""

    exit_code = 6


class StoppedError(CapplanError):
    """Stopped by SIGINT (exit 130) or SIGTERM (exit 143) with nothing half-written."""

    exit_code = 130

    @classmethod
    def for_signal(cls, signum: int, message: str) -> StoppedError:
        err = cls(message)
        err.exit_code = 128 + int(signum)
        return err
