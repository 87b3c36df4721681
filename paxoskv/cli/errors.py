"""Exit codes, and the one place where an exception becomes a line on stderr.

Scripts branch on the exit code, so the codes are a contract: 0 ok, 1 the key was not there
or a compare failed (the cluster answered, the answer is "no"), 2 the command line or a
setting is wrong (retrying the same command cannot help), 3 no quorum or a timeout (the
cluster did not answer; retrying later may help), 4 anything else the store refused (a
locked or corrupt data dir, a failed disk), 130 interrupted (but Ctrl-C is how a ``watch``
is meant to end, so it exits 0). A person reads the message, so it
is one line that says what to do; a traceback is only ever shown for a bug of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from paxoskv.errors import (
    Compacted,
    CompareFailed,
    ConfigurationError,
    InvalidArgument,
    InvalidCommand,
    InvalidKey,
    KeyNotFound,
    LeaseNotFound,
    NoQuorum,
    PaxosKVError,
    PayloadTooLarge,
    TransportUnavailable,
    ValueNotSerialisable,
    ValueTooLarge,
    WrongEncryptionKey,
    WrongSecret,
)

PROGRAM = "paxos-kv"

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130

# Checked in order, so a subclass must come before its base (NoQuorum is a TimeoutError).
_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (KeyNotFound, EXIT_NOT_FOUND),
    (CompareFailed, EXIT_NOT_FOUND),
    (LeaseNotFound, EXIT_NOT_FOUND),
    (Compacted, EXIT_NOT_FOUND),
    (ConfigurationError, EXIT_USAGE),
    # A key file that is not the data dir's is a setting, as a data dir given a key it was
    # not written with is: both exit 2 (this one exited 4, as a failed disk; CLI audit).
    (WrongEncryptionKey, EXIT_USAGE),
    (InvalidArgument, EXIT_USAGE),
    (InvalidKey, EXIT_USAGE),
    (InvalidCommand, EXIT_USAGE),
    (ValueTooLarge, EXIT_USAGE),
    (PayloadTooLarge, EXIT_USAGE),
    (ValueNotSerialisable, EXIT_USAGE),
    (NoQuorum, EXIT_UNAVAILABLE),
    (WrongSecret, EXIT_UNAVAILABLE),
    (TransportUnavailable, EXIT_UNAVAILABLE),
    (TimeoutError, EXIT_UNAVAILABLE),
    (PaxosKVError, EXIT_FAILED),
    (OSError, EXIT_FAILED),
)


class NodeExited(PaxosKVError):
    """A ``paxos-kv node`` process that a command started (``local-cluster``) exited: its own
    exit code and error line are the reason, so they are passed on rather than read as an
    unreachable cluster."""

    def __init__(self, node_id: str, exit_code: int | None, reason: str, log_path: str) -> None:
        self.node_id = node_id
        self.exit_code = exit_code
        why = f": {reason}" if reason else ""
        super().__init__(f"node {node_id} exited with code {exit_code}{why} (log: {log_path})")


UNREACHABLE_HINT = (
    "check that the nodes are running and that --group (or, for unicast, --peer), --cluster, "
    "--interface and --secret-file match theirs"
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What the user sees for an error: the exit code and the one line after ``paxos-kv:``."""

    exit_code: int
    message: str

    def line(self) -> str:
        return f"{PROGRAM}: {self.message}"


def is_user_error(error: BaseException) -> bool:
    """True for errors this module explains; anything else is a bug and keeps its traceback."""
    return any(isinstance(error, kind) for kind, _ in _CODES)


def failure_for(error: BaseException) -> Failure:
    """The exit code and message for ``error`` (a user-facing error, see :func:`is_user_error`)."""
    code = next((code for kind, code in _CODES if isinstance(error, kind)), EXIT_FAILED)
    if isinstance(error, NodeExited) and error.exit_code in (EXIT_USAGE, EXIT_UNAVAILABLE):
        code = error.exit_code
    if isinstance(error, KeyNotFound):
        # "paxos-kv: key 'x' not found" reads better than "error: key ..." for the common case.
        return Failure(code, _one_line(str(error)))
    return Failure(code, "error: " + _one_line(_describe(error, code)))


def usage_failure(error: click.UsageError) -> Failure:
    """click's usage errors, in one line with a pointer to the right ``--help``."""
    where = error.ctx.command_path if error.ctx is not None else PROGRAM
    message = _one_line(error.format_message()).rstrip(".")
    return Failure(EXIT_USAGE, f"usage error: {message} (see '{where} --help')")


def _describe(error: BaseException, code: int) -> str:
    if isinstance(error, OSError) and not isinstance(error, PaxosKVError | TimeoutError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}"
    text = str(error)
    if not text:
        text = "no answer in time" if isinstance(error, TimeoutError) else type(error).__name__
    if code == EXIT_UNAVAILABLE and isinstance(error, TimeoutError) and "--interface" not in text:
        text = f"{text.rstrip('.')}; {UNREACHABLE_HINT}"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())
