"""The ``local-cluster`` command: start a :class:`LocalCluster`, say how to reach it, wait.

It runs in the foreground like ``paxos-kv node`` does, so that Ctrl-C is the obvious way to
stop everything, and it reports a node that dies rather than leaving a person to wonder why
writes stall.
"""

from __future__ import annotations

import threading
from pathlib import Path

import click

from paxoskv.cli.cluster_options import cli_state
from paxoskv.cli.local_cluster import (
    LocalCluster,
    base_directory,
    shell_line,
    stop_requests,
)
from paxoskv.cli.node_cmd import LOG_LEVELS

READY_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.5


@click.command("local-cluster", short_help="Run N nodes on loopback, to try it out.")
@click.option(
    "--nodes", type=click.IntRange(1, 9), default=3, show_default=True, help="Voting nodes."
)
@click.option(
    "--learners",
    type=click.IntRange(0, 9),
    default=0,
    show_default=True,
    help="Learner nodes (receive the log, never vote).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the nodes keep their data (kept afterwards); default: a temporary directory "
    "removed on exit.",
)
@click.option(
    "--durability",
    type=click.Choice(["durable", "os", "memory"]),
    default="durable",
    show_default=True,
)
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
@click.pass_context
def local_cluster_command(
    ctx: click.Context,
    nodes: int,
    learners: int,
    data_dir: Path | None,
    durability: str,
    log_level: str,
) -> None:
    """Run NODES voters (and LEARNERS learners) on loopback until Ctrl-C."""
    with base_directory(data_dir) as base, stop_requests() as stop:
        cluster = LocalCluster(
            base,
            voters=nodes,
            learners=learners,
            durability=durability,
            log_level=log_level,
            connect=cli_state(ctx).connect,
        )
        with cluster:
            if cluster.removed:  # said, not done quietly: it runs fewer nodes than asked
                click.echo(
                    f"not starting {', '.join(cluster.removed)}: removed from the cluster in "
                    f"an earlier run (members remove), so their data dirs never rejoin; "
                    f"start on a fresh --data-dir for {nodes} voters and {learners} learners "
                    "again",
                    err=True,
                )
            if not cluster.nodes:
                raise click.UsageError(
                    f"every node in {base} was removed from its cluster in an earlier run; "
                    "start on a fresh --data-dir"
                )
            for node_id in cluster.nodes:
                cluster.start_node(node_id)
                click.echo(f"$ {shell_line(cluster.node_args(node_id))}")
            click.echo(f"waiting for the cluster to elect a leader (up to {READY_TIMEOUT_S:.0f}s)")
            members = cluster.wait_ready(READY_TIMEOUT_S, cancelled=stop)
            if stop.is_set():
                click.echo("stopping")
                return
            _describe(cluster, next(m.node_id for m in members if m.is_leader), base, data_dir)
            all_exited = _watch_until_stopped(cluster, stop)
            click.echo("stopping every node")
    click.echo("stopped")
    if all_exited:
        ctx.exit(3)  # the cluster is gone: not the clean stop of Ctrl-C


def _describe(cluster: LocalCluster, leader: str, base: Path, kept: Path | None) -> None:
    address = cluster.address
    click.echo("")
    click.echo(f"local cluster {address.cluster!r} is up; leader {leader}")
    for node in cluster.nodes.values():
        role = "leaving" if node.leaving else "learner" if node.learner else "voter"
        click.echo(f"  {node.node_id:<4} {role:<8} pid {node.pid:<8} log {node.log_path}")
    click.echo("")
    click.echo("Reach it from another shell:")
    click.echo(f"  {shell_line(['set', 'greeting', 'hello', *address.args()])}")
    click.echo(f"  {shell_line(['get', 'greeting', *address.args()])}")
    exports = " ".join(f"{name}={value}" for name, value in address.environment().items())
    click.echo("or, for every command in that shell:")
    click.echo(f"  export {exports}")
    where = "logs" if cluster.durability == "memory" else "data"  # memory: nothing else kept
    click.echo(f"{where} in {base}" + ("" if kept else " (removed on exit)"))
    click.echo("Ctrl-C stops every node.")


def _watch_until_stopped(cluster: LocalCluster, stop: threading.Event) -> bool:
    """Until Ctrl-C/SIGTERM, or until every node has exited (it ran on with none, saying
    only that each had exited: CLI audit, twenty-second session); a node that exits is
    reported once (and left stopped)."""
    reported: set[str] = set()
    while not stop.wait(WATCH_INTERVAL_S):
        exited = cluster.exited()
        if len(exited) == len(cluster.nodes):
            click.echo("every node has exited; see their logs", err=True)
            return True
        for node in exited:
            if node.node_id not in reported and node.process is not None:
                reported.add(node.node_id)
                gone = " (it was removed, and left as it should)" if node.leaving else ""
                click.echo(
                    f"node {node.node_id} exited with code {node.process.returncode}{gone}; "
                    f"see {node.log_path}",
                    err=True,
                )
    return False
