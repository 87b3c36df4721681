"""``dump`` and ``load``: a cluster's keys to a file and back (:mod:`paxoskv.backup`).

``dump --data-dir`` reads a stopped node's data dir instead of asking a cluster: the way to
save the data of a cluster that lost a quorum for good (README, "Backups and disaster
recovery"). FILE may be ``-``: standard output for ``dump``, standard input for ``load``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from paxoskv.backup import Dumped, Loaded, Target, dump_cluster, dump_data_dir, load_file
from paxoskv.cli.cluster_options import client_options, run_client
from paxoskv.client import KVApi

_PROGRESS_EVERY_S = 0.5
_DASH = Path("-")


@click.command("dump", short_help="Write every key (or those under a prefix) to a file.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@click.argument("prefix", required=False)
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read this stopped node's data dir instead of asking the cluster (only read).",
)
@click.option(
    "--encryption-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="With --data-dir: the key its journal and snapshots were encrypted with.",
)
@click.option(
    "--with-accepted",
    is_flag=True,
    help="With --data-dir: also the values the node accepted from its last leader in slots "
    "it had not learned were chosen (may hold writes never chosen; see the README).",
)
@client_options
@click.pass_context
def dump_command(
    ctx: click.Context,
    file: Path,
    prefix: str | None,
    data_dir: Path | None,
    encryption_key_file: Path | None,
    with_accepted: bool,
) -> None:
    """Write the keys under PREFIX (a str prefix; default: every key) with their values to
    FILE, as of one linearizable read, or as a stopped node's data dir holds them
    (--data-dir). FILE is written whole or not at all ('-': standard output);
    `paxos-kv load FILE` writes it back."""
    if (encryption_key_file is not None or with_accepted) and data_dir is None:
        raise click.UsageError("--encryption-key-file and --with-accepted go with --data-dir")
    target: Target = sys.stdout.buffer if file == _DASH else file
    if file != _DASH:
        parent = file.resolve().parent
        if not parent.is_dir():
            raise click.BadParameter(f"{file.parent} is not a directory", param_hint="FILE")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{file.parent} is not writable", param_hint="FILE")
    if data_dir is not None:
        dumped = dump_data_dir(
            data_dir, target, prefix, encryption_key_file, with_accepted=with_accepted
        )
    else:

        async def dump(client: KVApi) -> Dumped:
            return await dump_cluster(client, target, prefix)

        dumped = run_client(ctx, dump)
    where = "standard output" if file == _DASH else file
    said = f"dumped {dumped.keys:,} keys (revision {dumped.revision}) to {where}"
    click.echo(said, err=file == _DASH)
    if dumped.leases_without_ttl:
        click.echo(
            f"{dumped.leases_without_ttl:,} leases' ttls are not in it (a running cluster's "
            "listing does not carry them): load their keys with --lease-ttl SECONDS",
            err=True,
        )
    if dumped.accepted_slots_taken:
        click.echo(
            f"it holds {dumped.accepted_slots_taken:,} slots the node had accepted but not "
            "learned were chosen (--with-accepted)",
            err=True,
        )
    if dumped.accepted_slots_left:
        click.echo(
            f"{dumped.accepted_slots_left:,} slots (batches of writes) the node had accepted but "
            "not learned were chosen are not in it: --with-accepted takes those from its last "
            "leader (README, Backups and disaster recovery, says when that is right)",
            err=True,
        )


@click.command("load", short_help="Write the keys of a dump into the cluster.")
@click.argument(
    "file", type=click.Path(dir_okay=False, exists=True, path_type=Path, allow_dash=True)
)
@click.option(
    "--lease-ttl",
    "lease_ttl_s",
    type=float,
    metavar="SECONDS",
    help="Ttl of the new leases for keys whose lease's ttl the dump does not hold "
    "(default: such keys are left out, and counted).",
)
@client_options
@click.pass_context
def load_command(ctx: click.Context, file: Path, lease_ttl_s: float | None) -> None:
    """Write every key of FILE (made by `paxos-kv dump`; '-': standard input) into the
    cluster, overwriting keys of the same name; keys on a lease go on a new lease of the same
    ttl, counted from the load's end. The file is checked whole before anything is written.
    Safe to run again after a failure."""
    shown = _Progress()
    source: Target = sys.stdin.buffer if file == _DASH else file

    async def load(client: KVApi) -> Loaded:
        return await load_file(client, source, lease_ttl_s=lease_ttl_s, progress=shown)

    loaded = run_client(ctx, load, bounded=False)  # each request is bounded by --timeout
    shown.done()
    where = "standard input" if file == _DASH else file
    click.echo(f"loaded {loaded.keys:,} keys ({loaded.leases:,} new leases) from {where}")
    if loaded.skipped_leased:
        click.echo(
            f"left out {loaded.skipped_leased:,} keys on leases whose ttl the dump does not "
            "hold: load again with --lease-ttl SECONDS to write them too",
            err=True,
        )


class _Progress:
    """A line on stderr, rewritten at most every half second, when stderr is a terminal."""

    def __init__(self) -> None:
        self._shown_at = 0.0
        self._shown = False
        self._live = sys.stderr.isatty()

    def __call__(self, written: int, total: int) -> None:
        now = time.monotonic()
        if not self._live or now - self._shown_at < _PROGRESS_EVERY_S:
            return
        self._shown_at, self._shown = now, True
        click.echo(f"\rloaded {written:,} of {total:,} keys", nl=False, err=True)

    def done(self) -> None:
        if self._shown:
            click.echo(err=True)
