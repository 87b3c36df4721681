"""The ``paxos-kv`` command line: a click group whose commands drive a node or a cluster."""

from __future__ import annotations

import click

from paxoskv import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paxos-kv")
def main() -> None:
    """paxos-kv: a Paxos-replicated key-value store."""
