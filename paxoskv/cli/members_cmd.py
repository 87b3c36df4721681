"""``members`` (list, ``promote``, ``remove``) and ``status``: looking at the cluster itself.

The member list is the contacted node's view: its configuration (who votes, who learns) and
its failure detector's opinion of who is up. Two nodes may disagree for a moment about who is
suspect; they never disagree about the configuration at the same applied revision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from paxoskv.cli.cluster_options import client_options, json_option, run_client
from paxoskv.cli.output import member_json, members_table, pretty_json, status_lines
from paxoskv.client import KVApi

if TYPE_CHECKING:
    from paxoskv.runtime.membership import Member


@click.group("members", invoke_without_command=True, short_help="List the members, or change them.")
@json_option
@client_options
@click.pass_context
def members_command(ctx: click.Context, as_json: bool) -> None:
    """List the members (id, role, up/suspect/down, applied revision, leader), or change them.

    Without a subcommand, print the table; the leader is marked with '*'. ROLE is voter,
    learner, joining (heard from, not yet in the configuration), or leaving (a voter removed
    that votes on until the voters left no longer need it).
    """
    if ctx.invoked_subcommand is not None:
        return

    async def list_members(client: KVApi) -> list[Member]:
        return await client.members()

    members = run_client(ctx, list_members)
    if as_json:
        click.echo(pretty_json([member_json(member) for member in members]))
        return
    for line in members_table(members):
        click.echo(line)


@members_command.command("promote")
@click.argument("node_id", metavar="ID")
@client_options
@click.pass_context
def promote_command(ctx: click.Context, node_id: str) -> None:
    """Make learner ID a voter (let it catch up first: see its APPLIED column)."""

    async def promote(client: KVApi) -> None:
        await client.promote(node_id)

    run_client(ctx, promote)
    click.echo(f"promoted {node_id}")


@members_command.command("remove")
@click.argument("node_id", metavar="ID")
@click.option(
    "--force",
    is_flag=True,
    help="Remove it even if the voters left would have no quorum of live ones.",
)
@client_options
@click.pass_context
def remove_command(ctx: click.Context, node_id: str, force: bool) -> None:
    """Take member ID out of the configuration, while it runs.

    The node sees its removal in the log, logs that it was removed and exits (code 4); its data
    dir will not start again (start it on a fresh --data-dir to bring it back as a new member).
    A node removed while stopped exits the same way when it next starts and catches up. A
    removal that would leave the other voters without a quorum of live ones is refused (exit
    2) unless --force: the cluster would take no writes until a down voter is back.
    """

    async def remove(client: KVApi) -> None:
        await client.remove(node_id, force=force)

    run_client(ctx, remove)
    click.echo(f"removed {node_id}")


@click.command("status", short_help="Show the contacted node's status.")
@json_option
@client_options
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Print the contacted node's status: its id, role, the leader, revision, counters."""

    async def status(client: KVApi) -> dict[str, Any]:
        return await client.status()

    report = run_client(ctx, status)
    if as_json:
        click.echo(pretty_json(report))
        return
    for line in status_lines(report):
        click.echo(line)
