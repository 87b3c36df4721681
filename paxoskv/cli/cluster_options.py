"""The options every client command shares, and how a command gets a client from them.

A client needs only to find its cluster: the group, interface, scope, seed peers, cluster name
and secret, plus how long to wait. Those options are declared once here and attached to every
command with :func:`cluster_options`; their values are collected into ``ctx.meta`` rather
than passed as a dozen arguments to every command function. Unset options are left ``None``
so that :func:`~paxoskv.config.load_config` lets ``PAXOS_KV_*`` variables and the TOML file
fill them in (flags win over the environment, the environment over the file).

The client factory is carried in ``ctx.obj`` (:class:`CliState`) so that tests can hand the
commands a fake cluster without patching modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from paxoskv.client import KVApi
from paxoskv.config import Config, load_config
from paxoskv.errors import NoQuorum

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

ClientFactory = Callable[[Config, str | None], KVApi]
"""Makes a client from its Config and the member to send every request to (None: the leader,
or any member)."""

_META_KEY = "paxoskv.cluster_options"
_TARGET_KEY = "paxoskv.target_node"
# A bound on a whole command on top of the client's own request timeout, so that a bug below
# can never leave a script hanging; generous, because the client retries within its timeout.
COMMAND_GRACE_S = 5.0


def remote_client(config: Config, node_id: str | None = None) -> KVApi:
    """The real thin client, pinned to one member when ``node_id`` is given."""
    from paxoskv.remote import connect

    return connect(config, node_id=node_id)


@dataclass(frozen=True, slots=True)
class CliState:
    """What the commands get from whoever invoked them (``main(obj=CliState(...))``)."""

    connect: ClientFactory = remote_client


def cli_state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    return state if state is not None else CliState()


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a set option; an unset one must not hide the same option given to a parent
    command (``paxos-kv members --group G promote n4``)."""
    assert param.name is not None
    if value is not None and value != ():
        ctx.meta.setdefault(_META_KEY, {})[param.name] = value
    return value


def setting_option(*names: str, **settings: Any) -> Callable[[F], F]:
    """An option that feeds :func:`settings_config` instead of the command function."""
    return click.option(*names, expose_value=False, callback=_remember, **settings)


SCOPES = click.Choice(["multicast", "broadcast", "unicast"])

_CLUSTER_OPTIONS = (
    setting_option("--group", metavar="ADDR:PORT", help="Multicast group of the cluster."),
    setting_option(
        "--interface", metavar="NAME|IP", help="Network interface to talk on (default: loopback)."
    ),
    setting_option("--scope", type=SCOPES, help="How datagrams reach the nodes."),
    setting_option(
        "--peer",
        "peers",
        multiple=True,
        metavar="IPV4:PORT",
        help="A node to talk to directly (unicast scope), by IPv4 address; repeat for more.",
    ),
    setting_option(
        "--cluster", metavar="NAME", help="Cluster name; frames of other clusters are ignored."
    ),
    setting_option(
        "--secret-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File holding the cluster secret.",
    ),
    setting_option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML file of settings (flags and PAXOS_KV_* variables override it).",
    ),
)


class PositiveSeconds(click.FloatRange):
    """A positive, finite number of seconds. ``FloatRange(min=0, min_open=True)`` lets NaN
    through (no comparison with NaN is true), and a ``paxos-kv node --timeout nan`` then
    stopped with a traceback from the event loop's timer."""

    name = "seconds"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return number


_TIMEOUT_OPTION = setting_option(
    "--timeout",
    "request_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How long to wait for the cluster's answer (default 5).",
)


def cluster_options(command: F) -> F:
    """Attach the shared cluster options to a command."""
    for option in reversed((*_CLUSTER_OPTIONS, _TIMEOUT_OPTION)):
        command = option(command)
    return command


def finding_options(command: F) -> F:
    """The options that find a cluster, without a client's --timeout (``paxos-kv node``
    gives --timeout its own meaning)."""
    for option in reversed(_CLUSTER_OPTIONS):
        command = option(command)
    return command


def _remember_target(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_TARGET_KEY] = value


def _node_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--node", metavar="ID", expose_value=False, callback=_remember_target, help=help_text
    )


def client_options(command: F) -> F:
    """The shared cluster options plus --node, for commands that talk to a running cluster."""
    return cluster_options(
        _node_option("Send the request to this member (default: the leader, or any member).")(
            command
        )
    )


def read_options(command: F) -> F:
    """:func:`client_options` for the commands that take --consistency (get, keys)."""
    return cluster_options(
        _node_option(
            "Send the request to this member (default: the leader). With --consistency local, "
            "read that member's own copy."
        )(command)
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")


def settings_config(ctx: click.Context, **fixed: object) -> Config:
    """A Config from the setting options given, ``PAXOS_KV_*`` variables and the TOML file."""
    values = dict(ctx.meta.get(_META_KEY, {}))
    config_file = values.pop("config_file", None)
    values.update(fixed)
    return load_config(values, config_file=config_file)


def client_config(ctx: click.Context) -> Config:
    """A client keeps nothing on disk, whatever a node's settings file says about durability."""
    return settings_config(ctx, durability="memory")


def run_client(
    ctx: click.Context, action: Callable[[KVApi], Awaitable[T]], *, bounded: bool = True
) -> T:
    """Connect, run ``action`` with the client, and close.

    ``bounded`` caps the whole command a little above the request timeout; ``watch`` runs
    until it is told to stop, so it passes False.
    """
    config = client_config(ctx)
    connect = cli_state(ctx).connect
    node_id: str | None = ctx.meta.get(_TARGET_KEY)

    async def session() -> T:
        async with connect(config, node_id) as client:
            return await action(client)

    async def bounded_session() -> T:
        return await asyncio.wait_for(session(), config.request_timeout_s + COMMAND_GRACE_S)

    with _warnings_kept() as warnings:
        try:
            return asyncio.run(bounded_session() if bounded else session())
        except TimeoutError as error:
            if not warnings.messages:
                raise
            # A client that heard only frames it had to drop (a wrong secret, another
            # release) would otherwise say just "no answer"; the transport knows why.
            raise NoQuorum(f"{error}; and meanwhile: {warnings.messages[0]}") from None


class _KeptWarnings(logging.Handler):
    """Warnings from the layers below, kept for the error message instead of printed: a
    client command's stderr is one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


@contextlib.contextmanager
def _warnings_kept() -> Iterator[_KeptWarnings]:
    handler = _KeptWarnings()
    logger = logging.getLogger("paxoskv")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
