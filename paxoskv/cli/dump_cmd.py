"""``dump`` and ``load``: a cluster's keys to a file and back (:mod:`paxoskv.backup`).

``dump --data-dir`` reads a stopped node's data dir instead of asking a cluster: the way to
save the data of a cluster that lost a quorum for good (README, "Backups and disaster
recovery").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from paxoskv.backup import Dumped, Loaded, dump_cluster, dump_data_dir, load_file
from paxoskv.cli.cluster_options import client_options, run_client
from paxoskv.client import KVApi

_PROGRESS_EVERY_S = 0.5


@click.command("dump", short_help="Write every key (or those under a prefix) to a file.")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.argument("prefix", required=False)
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read this stopped node's data dir instead of asking the cluster (left unchanged).",
)
@click.option(
    "--encryption-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="With --data-dir: the key its journal and snapshots were encrypted with.",
)
@click.option(
    "--chosen-only",
    is_flag=True,
    help="With --data-dir: leave out the values the node accepted in slots it had not yet "
    "learned were chosen (by default they are kept: a write acknowledged just before the "
    "loss may be among them).",
)
@client_options
@click.pass_context
def dump_command(
    ctx: click.Context,
    file: Path,
    prefix: str | None,
    data_dir: Path | None,
    encryption_key_file: Path | None,
    chosen_only: bool,
) -> None:
    """Write the keys under PREFIX (a str prefix; default: every key) with their values to
    FILE, as of one linearizable read, or as a stopped node's data dir holds them
    (--data-dir). FILE is written whole or not at all; `paxos-kv load FILE` writes it back."""
    if (encryption_key_file is not None or chosen_only) and data_dir is None:
        raise click.UsageError("--encryption-key-file and --chosen-only go with --data-dir")
    if data_dir is not None:
        dumped = dump_data_dir(data_dir, file, prefix, encryption_key_file, chosen_only=chosen_only)
    else:

        async def dump(client: KVApi) -> Dumped:
            return await dump_cluster(client, file, prefix)

        dumped = run_client(ctx, dump)
    click.echo(f"dumped {dumped.keys:,} keys (revision {dumped.revision}) to {file}")
    if dumped.accepted_slots_taken:
        click.echo(
            f"{dumped.accepted_slots_taken:,} slots the node had accepted but not yet learned "
            "were chosen are in it (--chosen-only leaves them out)",
            err=True,
        )
    if dumped.leases_without_ttl:
        click.echo(
            f"{dumped.leases_without_ttl:,} leases' ttls are not in it (a running cluster's "
            "listing does not carry them): load their keys with --lease-ttl SECONDS",
            err=True,
        )


@click.command("load", short_help="Write the keys of a dump into the cluster.")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
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
    """Write every key of FILE (made by `paxos-kv dump`) into the cluster, overwriting keys
    of the same name; keys on a lease go on a new lease of the same ttl. The file is checked
    whole before anything is written. Safe to run again after a failure."""
    shown = _Progress()

    async def load(client: KVApi) -> Loaded:
        return await load_file(client, file, lease_ttl_s=lease_ttl_s, progress=shown)

    loaded = run_client(ctx, load, bounded=False)  # each request is bounded by --timeout
    shown.done()
    click.echo(f"loaded {loaded.keys:,} keys ({loaded.leases:,} new leases) from {file}")
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
