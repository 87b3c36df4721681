"""The peer table and its gossip, without a network."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.transport.peers import PeerTable, decode_peer_list, encode_peer_list


def test_direct_observation_beats_a_report_and_a_report_never_overwrites() -> None:
    table = PeerTable("me", ("h", 1))
    assert table.learn_reported([("a", ("h", 2))])
    assert not table.learn_reported([("a", ("h", 99))])
    assert table.address_of("a") == ("h", 2)
    assert table.learn_direct("a", ("h", 3))
    assert not table.learn_direct("a", ("h", 3))
    assert table.address_of("a") == ("h", 3)


def test_own_id_and_own_address_are_never_destinations() -> None:
    table = PeerTable("me", ("h", 1), seeds=[("h", 1), ("h", 5), ("h", 5)])
    assert not table.learn_direct("me", ("h", 7))
    assert not table.learn_reported([("me", ("h", 8))])
    assert table.destinations() == [("h", 5)]


def test_a_seed_whose_owner_is_known_is_sent_to_once() -> None:
    table = PeerTable("me", ("h", 1), seeds=[("h", 5)])
    table.learn_direct("s", ("h", 5))
    table.learn_direct("t", ("h", 6))
    assert table.destinations() == [("h", 5), ("h", 6)]
    table.forget("t")
    assert table.destinations() == [("h", 5)]


def test_peer_list_round_trip() -> None:
    entries = [("a", ("10.0.0.1", 47475)), ("b", (1, 2, 3, 0, 2))]
    assert decode_peer_list(encode_peer_list(entries)) == entries


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_decoding_garbage_never_raises(body: bytes) -> None:
    result = decode_peer_list(body)
    assert result is None or isinstance(result, list)


def test_gossip_converges_from_a_single_seed_in_any_delivery_order() -> None:
    """Each node starts knowing only the seed; peers exchange tables until nothing changes."""
    rng = random.Random(2024)
    for _ in range(20):
        size = rng.randrange(2, 12)
        addresses = {f"n{i}": ("h", 1000 + i) for i in range(size)}
        tables = {
            name: PeerTable(name, address, seeds=[addresses["n0"]])
            for name, address in addresses.items()
        }
        by_address = {address: name for name, address in addresses.items()}
        # (receiver, sender, entries): the hello every joiner sends its seed
        pending = [("n0", name, []) for name in addresses if name != "n0"]
        while pending:
            receiver, sender, entries = pending.pop(rng.randrange(len(pending)))
            table = tables[receiver]
            changed = table.learn_direct(sender, addresses[sender])
            changed |= table.learn_reported(entries)
            if changed:
                for destination in table.destinations():
                    pending.append((by_address[destination], receiver, table.entries()))
        for name, table in tables.items():
            assert set(table.as_mapping()) == set(addresses) - {name}
