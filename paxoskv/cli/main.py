"""The ``paxos-kv`` group, and the one place where errors turn into exit codes.

click's own standalone mode prints usage errors over three lines and lets our errors escape
as tracebacks; :class:`PaxosKVGroup` runs click in non-standalone mode instead and maps every
outcome through :mod:`paxoskv.cli.errors`, so that each command can simply raise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from paxoskv.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROGRAM,
    Failure,
    failure_for,
    is_user_error,
    usage_failure,
)


class PaxosKVGroup(click.Group):
    """A click group whose ``main`` never shows a traceback for a user's mistake."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        try:
            outcome = super().main(
                # One name in every message, however it was started (python -m, a test runner).
                args,
                PROGRAM,
                complete_var,
                standalone_mode=False,
                **extra,
            )
        except click.UsageError as error:
            _fail(usage_failure(error))
        except click.ClickException as error:
            _fail(Failure(error.exit_code, f"error: {error.format_message()}"))
        except (click.Abort, KeyboardInterrupt):
            _fail(Failure(EXIT_INTERRUPTED, "interrupted"))
        except BrokenPipeError:
            _quiet_broken_pipe()
        except Exception as error:
            if not is_user_error(error):
                raise
            _fail(failure_for(error))
        # Without standalone mode, click returns the code of a ctx.exit(n) (--help, --version).
        sys.exit(outcome if isinstance(outcome, int) else EXIT_OK)


def _fail(failure: Failure) -> NoReturn:
    click.echo(failure.line(), err=True)
    sys.exit(failure.exit_code)


def _quiet_broken_pipe() -> NoReturn:
    """``paxos-kv keys | head``: the reader left; stop without a traceback from the flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_OK)


def _show_version(context: click.Context, _parameter: click.Parameter, asked: bool) -> None:
    """``--version``, as click's version_option prints it, with the version looked up only
    when asked: ``paxos-kv node`` starts without importing ``importlib.metadata``."""
    if not asked or context.resilient_parsing:
        return
    import paxoskv

    click.echo(f"{PROGRAM}, version {paxoskv.__version__}")
    context.exit()


@click.group(PROGRAM, cls=PaxosKVGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
def main() -> None:
    """paxos-kv: a Paxos-replicated key-value store.

    Run nodes with 'paxos-kv node' (or try 'paxos-kv local-cluster'), then read and write with
    the other commands. Every command finds the cluster through --group, --interface,
    --cluster and --secret-file, or the PAXOS_KV_* variables, or a TOML --config file.

    Exit codes: 0 ok (also a watch ended with Ctrl-C), 1 key not found, compare failed or
    watch history compacted, 2 usage or bad input, 3 no quorum or timeout, 4 other failures
    (a locked or corrupt data dir), 130 interrupted.
    """


def _register() -> None:
    from paxoskv.cli.kv_cmds import (
        delete_command,
        get_command,
        keys_command,
        set_command,
        watch_command,
    )
    from paxoskv.cli.local_cluster_cmd import local_cluster_command
    from paxoskv.cli.members_cmd import members_command, status_command
    from paxoskv.cli.node_cmd import node_command

    for command in (
        node_command,
        get_command,
        set_command,
        delete_command,
        keys_command,
        watch_command,
        members_command,
        status_command,
        local_cluster_command,
    ):
        main.add_command(command)

    from paxoskv.cli.bench_cmd import bench_command

    main.add_command(bench_command)


_register()
