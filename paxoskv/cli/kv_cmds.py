"""``get``, ``set``, ``delete``, ``keys`` and ``watch``: the key-value commands.

A KEY on the command line is a str key. Bytes and tuple keys (``("session", sid)``) are a
Python API thing; they still show up here, in ``keys`` and ``watch`` output, written as Python
literals. A VALUE is a str unless ``--json-value`` asks for it to be parsed as JSON, so that
``set n 5`` stores the text ``"5"`` and ``set n 5 --json-value`` the number 5: guessing would
turn a zip code into an int.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click

from paxoskv.cli.cluster_options import client_options, json_option, read_options, run_client
from paxoskv.cli.output import (
    entry_json,
    event_json,
    event_line,
    from_jsonable,
    json_text,
    pretty_json,
    show_key,
    show_value,
)
from paxoskv.client import Consistency, KVApi
from paxoskv.errors import KeyNotFound, ValueNotSerialisable
from paxoskv.state.results import KeyValue
from paxoskv.state.wire import MAX_NESTING, check_value

CONSISTENCY = click.Choice(["linearizable", "leader", "local"])


@click.command("get", short_help="Print the value of a key.")
@click.argument("key")
@click.option(
    "--consistency",
    type=CONSISTENCY,
    default="linearizable",
    show_default=True,
    help="linearizable: confirmed by a quorum; leader: the leader's copy under its lease; "
    "local: the contacted node's copy, possibly stale.",
)
@json_option
@read_options
@click.pass_context
def get_command(ctx: click.Context, key: str, consistency: Consistency, as_json: bool) -> None:
    """Print the value of KEY (strings and bytes raw, other values as JSON; --json tags
    bytes); exit 1 if it is missing."""

    async def read(client: KVApi) -> KeyValue | None:
        return await client.get_entry(key, consistency=consistency)

    entry = run_client(ctx, read)
    if entry is None:
        raise KeyNotFound(key)
    if as_json:
        click.echo(pretty_json(entry_json(entry)))
    elif isinstance(entry.value, bytes):
        click.echo(entry.value, nl=False)  # binary-safe: `paxos-kv get k > file` keeps bytes
    else:
        click.echo(show_value(entry.value))


def _parse_json_value(text: str) -> Any:
    too_deep = f"the JSON value nests too deep: a value may nest at most {MAX_NESTING} levels"
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"{text!r} is not JSON ({error})", param_hint="VALUE") from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise click.BadParameter(too_deep, param_hint="VALUE") from None
    try:
        value = from_jsonable(parsed)  # the tags --json writes: bytes, NaN, maps of any keys
        check_value(value)  # one deep enough for json, too deep to store, is the same mistake
    except ValueNotSerialisable as error:
        message = str(error)
        if "nested deeper" in message:
            message = too_deep
        raise click.BadParameter(message, param_hint="VALUE") from None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="VALUE") from None
    except RecursionError:
        raise click.BadParameter(too_deep, param_hint="VALUE") from None
    return value


@click.command("set", short_help="Write a key; print the revision.")
@click.argument("key")
@click.argument("value")
@click.option(
    "--json-value", is_flag=True, help="Parse VALUE as JSON instead of taking it as text."
)
@click.option(
    "--ttl",
    "ttl_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Delete the key this long after the write (grants a lease for it).",
)
@click.option(
    "--if-revision",
    type=click.IntRange(min=0),
    metavar="R",
    help="Write only if the key was last modified at revision R (0: only if it does not "
    "exist); exit 1 if not.",
)
@client_options
@click.pass_context
def set_command(
    ctx: click.Context,
    key: str,
    value: str,
    json_value: bool,
    ttl_s: float | None,
    if_revision: int | None,
) -> None:
    """Set KEY to VALUE and print the revision of the write."""
    parsed: Any = _parse_json_value(value) if json_value else value

    async def write(client: KVApi) -> int:
        lease = None if ttl_s is None else await client.grant_lease(ttl_s)
        return await client.set(key, parsed, lease=lease, if_revision=if_revision)

    click.echo(run_client(ctx, write))


@click.command("delete", short_help="Delete a key.")
@click.argument("key")
@click.option("--missing-ok", is_flag=True, help="Exit 0 even if KEY does not exist.")
@client_options
@click.pass_context
def delete_command(ctx: click.Context, key: str, missing_ok: bool) -> None:
    """Delete KEY; exit 1 if it did not exist (unless --missing-ok)."""

    async def delete(client: KVApi) -> bool:
        return await client.delete(key)

    if not run_client(ctx, delete) and not missing_ok:
        raise KeyNotFound(key)


@click.command("keys", short_help="List the keys under a prefix.")
@click.argument("prefix", required=False)
@click.option(
    "--consistency",
    type=CONSISTENCY,
    default="linearizable",
    show_default=True,
    help="As for get: linearizable, leader, or local (the contacted node's copy).",
)
@json_option
@read_options
@click.pass_context
def keys_command(
    ctx: click.Context, prefix: str | None, consistency: Consistency, as_json: bool
) -> None:
    """List the keys under PREFIX (a str prefix), or every key, one a line."""

    async def list_keys(client: KVApi) -> list[Any]:
        return await client.keys(prefix, consistency=consistency)

    keys = run_client(ctx, list_keys)
    if as_json:
        click.echo(json_text(list(keys)))
        return
    for key in keys:
        click.echo(show_key(key))


@click.command("watch", short_help="Print changes as they are applied.")
@click.argument("prefix", required=False)
@click.option(
    "--from-revision",
    type=click.IntRange(min=1),
    metavar="R",
    help="Start with the changes at revision R (default: only changes from now on).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit 0 after N events (default: run until Ctrl-C).",
)
@json_option
@client_options
@click.pass_context
def watch_command(
    ctx: click.Context,
    prefix: str | None,
    from_revision: int | None,
    count: int | None,
    as_json: bool,
) -> None:
    """Print one line per change under PREFIX (or to any key): revision, kind, key, value."""

    async def follow(client: KVApi) -> None:
        seen = 0
        events = client.watch(prefix, from_revision=from_revision)
        try:
            async for event in events:
                click.echo(json_text(event_json(event)) if as_json else event_line(event))
                seen += 1
                if count is not None and seen >= count:
                    return
        finally:
            # Unsubscribe now rather than when the generator is collected, after the client
            # it needs has closed.
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch is meant to end
        run_client(ctx, follow, bounded=False)
