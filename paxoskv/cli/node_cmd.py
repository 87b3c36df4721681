"""``paxos-kv node``: run one replica in the foreground until SIGTERM or Ctrl-C.

The process is the unit a supervisor (systemd, a container runtime, ``local-cluster``)
manages, so it behaves as such units should: logs go to stderr one line per event, SIGTERM
and SIGINT stop it cleanly (the journal is closed, not torn), and a replica that fail-stops
on an I/O error makes the process exit non-zero with the reason, so the supervisor notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from paxoskv.cli.cluster_options import (
    PositiveSeconds,
    finding_options,
    setting_option,
    settings_config,
)
from paxoskv.config import Config
from paxoskv.errors import NodeClosed, NoQuorum
from paxoskv.runtime.loop import loop_name, run

if TYPE_CHECKING:
    from paxoskv.node import Node

log = logging.getLogger("paxoskv.cli.node")

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
# How long to wait for a cluster before saying so again in the log (the node keeps waiting).
READY_REMINDER_S = 30.0

_NODE_OPTIONS = (
    setting_option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory for the snapshot, journal and node id (one node per directory).",
    ),
    setting_option(
        "--node-id",
        metavar="ID",
        help="This node's id (default: kept in the data dir, or a fresh random one).",
    ),
    setting_option("--port", type=click.IntRange(0, 65535), help="Unicast UDP port (0: any)."),
    setting_option("--learner", is_flag=True, default=None, help="Receive the log but never vote."),
    setting_option("--join", is_flag=True, default=None, help="Join a running cluster."),
    setting_option(
        "--bootstrap-expect",
        type=click.IntRange(min=1),
        metavar="N",
        help="Form a new cluster once N nodes started with the same N have met.",
    ),
    setting_option(
        "--durability",
        type=click.Choice(["durable", "os", "memory"]),
        help="durable: fsync before acknowledging (default); os: survive a process crash, not a "
        "power cut; memory: keep nothing.",
    ),
    setting_option(
        "--event-loop",
        type=click.Choice(["auto", "asyncio", "uvloop"]),
        help="auto (default): uvloop if installed (pip install 'paxos-kv[fast]'), else asyncio.",
    ),
    setting_option(
        "--encryption-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Key file to encrypt the data dir at rest.",
    ),
)


def node_options(command: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_NODE_OPTIONS):
        command = option(command)
    return command


def configure_logging(level: str) -> None:
    """One concise line per record on stderr; ``force`` so a second call (tests) re-applies."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, datefmt="%H:%M:%S", force=True)


@click.command("node", short_help="Run a replica in the foreground.")
@node_options
@finding_options
@click.option(
    "--timeout",
    "ready_timeout_s",
    type=PositiveSeconds(),
    metavar="SECONDS",
    help="Give up (exit 3) if the node has no cluster this long after it starts: none to "
    "join and none formed (default: keep waiting until stopped).",
)
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
@click.pass_context
def node_command(ctx: click.Context, ready_timeout_s: float | None, log_level: str) -> None:
    """Run a replica in the foreground; SIGTERM or Ctrl-C stops it cleanly."""
    config = settings_config(ctx)
    configure_logging(log_level)
    # A fatal signal gets the Python traceback on stderr: at start the store reads its last
    # journal segment through a memory map, where a disk that fails to page it in raises
    # SIGBUS, not an OSError, and the traceback is then what names the step. (Not where
    # stderr is no file, as under a test's runner.)
    with contextlib.suppress(ValueError, OSError):
        faulthandler.enable()
    run(serve(config, ready_timeout_s), event_loop=config.event_loop)


async def serve(config: Config, ready_timeout_s: float | None = None) -> None:
    """Run a node until a signal asks it to stop or it fail-stops (then raise its failure).

    With ``ready_timeout_s``, a node that has no cluster by then stops and raises NoQuorum: a
    supervisor or a script learns that the cluster was not there instead of waiting forever.
    """
    from paxoskv.node import Node  # here: the client commands beside this one never need it

    loop = asyncio.get_running_loop()
    asked_to_stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, asked_to_stop.set)
    try:
        async with Node(config) as node:
            log.info(
                "node %s of cluster %r, reached %s (data %s, %s loop)",
                node.node_id,
                config.cluster,
                config.reach(),
                config.data_dir or "in memory",
                loop_name(config.event_loop),
            )
            failure = await _run_until_stopped(node, asked_to_stop, ready_timeout_s)
        log.info("node %s stopped", node.node_id)
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
    if failure is not None:
        raise failure


async def _run_until_stopped(
    node: Node, asked_to_stop: asyncio.Event, ready_timeout_s: float | None
) -> BaseException | None:
    announce = asyncio.create_task(_announce_ready(node, ready_timeout_s))
    stops = {
        asyncio.create_task(asked_to_stop.wait()),
        asyncio.create_task(node.replica.stopped.wait()),
    }
    try:
        done, _ = await asyncio.wait({announce, *stops}, return_when=asyncio.FIRST_COMPLETED)
        if done == {announce} and announce.exception() is None:  # ready: run until stopped
            await asyncio.wait(stops, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (announce, *stops):
            task.cancel()
        for task in (announce, *stops):
            with contextlib.suppress(asyncio.CancelledError, NoQuorum, NodeClosed):
                await task  # (a wait for readiness ends with NodeClosed if the node stopped)
    if node.replica.failure is None and announce.done() and not announce.cancelled():
        return announce.exception()  # no cluster within --timeout (None: it was ready)
    return node.replica.failure


async def _announce_ready(node: Node, ready_timeout_s: float | None = None) -> None:
    """Say once in the log when the node has a cluster; remind while it has none, or with
    ``ready_timeout_s`` give up (NoQuorum) after that long."""
    while True:
        try:
            await node.wait_ready(ready_timeout_s or READY_REMINDER_S)
        except NoQuorum as error:
            if ready_timeout_s is not None:
                raise
            log.warning("%s", error)
            continue
        status = node.replica.status()
        role = status["role"]
        log.info(
            "node %s %s the cluster (%d voters)",
            node.node_id,
            "is leaving" if role == "leaving" else f"is a {role} of",
            len(status["voters"]),
        )
        return
