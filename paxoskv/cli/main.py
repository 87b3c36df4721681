"""The ``paxos-kv`` group, and the one place where errors turn into exit codes.

click's own standalone mode prints usage errors over three lines and lets our errors escape
as tracebacks; :class:`PaxosKVGroup` runs click in non-standalone mode instead and maps every
outcome through :mod:`paxoskv.cli.errors`, so that each command can simply raise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any, NoReturn

import click

from paxoskv.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROGRAM,
    Failure,
    failure_for,
    is_user_error,
    usage_failure,
)

# Where each command lives, in the order they were always registered. A command's module is
# imported when the command is looked up: ``paxos-kv get`` loads the key-value commands and the
# thin client only, not the local cluster's or the node's modules. Listing the commands (the
# help, an unknown command's "did you mean") loads them all, so both read as before.
COMMAND_HOMES = {
    "node": ("paxoskv.cli.node_cmd", "node_command"),
    "get": ("paxoskv.cli.kv_cmds", "get_command"),
    "set": ("paxoskv.cli.kv_cmds", "set_command"),
    "delete": ("paxoskv.cli.kv_cmds", "delete_command"),
    "keys": ("paxoskv.cli.kv_cmds", "keys_command"),
    "watch": ("paxoskv.cli.kv_cmds", "watch_command"),
    "dump": ("paxoskv.cli.dump_cmd", "dump_command"),
    "load": ("paxoskv.cli.dump_cmd", "load_command"),
    "members": ("paxoskv.cli.members_cmd", "members_command"),
    "status": ("paxoskv.cli.members_cmd", "status_command"),
    "local-cluster": ("paxoskv.cli.local_cluster_cmd", "local_cluster_command"),
    "bench": ("paxoskv.cli.bench_cmd", "bench_command"),
}


class PaxosKVGroup(click.Group):
    """A click group whose ``main`` never shows a traceback for a user's mistake, and whose
    commands are imported when they are looked up (:data:`COMMAND_HOMES`)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            if cmd_name in COMMAND_HOMES:
                self._load(cmd_name)
            else:  # click suggests close names from self.commands: let it see them all
                self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)

    def _load(self, name: str) -> None:
        module, attribute = COMMAND_HOMES[name]
        command: click.Command = getattr(import_module(module), attribute)
        self.add_command(command, name)

    def _load_all(self) -> None:
        for name in COMMAND_HOMES:
            if name not in self.commands:
                self._load(name)
        # In registration order, whichever was looked up first: as the eager group kept them
        # (click's "did you mean" breaks ties in this order); any added otherwise after them.
        self.commands = {**{name: self.commands[name] for name in COMMAND_HOMES}, **self.commands}

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
            if _is_bare_help(error):  # `paxos-kv` alone: the help as it reads, not one line
                click.echo(error.format_message(), err=True)
                sys.exit(EXIT_USAGE)
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


def _is_bare_help(error: click.UsageError) -> bool:
    """The group called with no command, which click (8.2 on) raises as a usage error whose
    message is the whole help (8.1 printed the help itself and exited 0)."""
    return type(error).__name__ == "NoArgsIsHelpError"


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
