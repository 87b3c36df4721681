"""A cluster's window (alpha) is fixed when it is formed, and kept in its formation id.

The window is both how many slots a leader keeps in flight and how far ahead a configuration
change takes effect, so every node of a cluster must count the same one for good. Clusters
formed now run :data:`WINDOW_SLOTS` (64: 1 KB and 8 KB writes kept the cluster busy only
while 16 slots could wait on a majority's sync); clusters formed before, or with a founder of
an earlier release, run the 16 that release ran. An earlier release is never counted in a
cluster of another window, and refuses the data dir of one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxoskv.errors import ConfigurationError
from paxoskv.runtime import protocol
from paxoskv.runtime.identity import (
    BOOTSTRAP_FILE,
    GENESIS_FILE,
    LIFE_FILE,
    formation_id,
    fresh_nonce,
    read_genesis,
    save_genesis,
)
from paxoskv.runtime.window import LEGACY_WINDOW_SLOTS, WINDOW_SLOTS, window_slots
from tests.runtime.cluster import MemoryCluster, eventually
from tests.runtime.test_formation import IDS, applied, caught_up, on_disk, values_everywhere


def windows(cluster: MemoryCluster) -> set[int]:
    """The window every running node's engine counts by."""
    found = set()
    for node in cluster.nodes.values():
        assert node.replica.engine is not None
        found.add(node.replica.engine.settings.window_slots)
        assert node.replica.status()["window_slots"] == node.replica.engine.settings.window_slots
    return found


async def bootstrap(cluster: MemoryCluster, base: Path) -> None:
    for node_id in IDS:
        await cluster.start(node_id, bootstrap_expect=3, **on_disk(base, node_id))
    for node in cluster.nodes.values():
        await node.wait_ready(5)


def test_a_window_is_read_from_a_formation_and_a_bad_one_refused() -> None:
    assert window_slots("") == LEGACY_WINDOW_SLOTS  # formed before formation ids
    assert window_slots("0123456789abcdef") == LEGACY_WINDOW_SLOTS  # ... or before windows
    assert window_slots("0123456789abcdef/w64") == 64
    for bad in ("f/w", "f/w0", "f/w-1", "f/wx", "f/w1025", "f/w 64", "f/w٦٤", "f/w064"):
        with pytest.raises(ValueError, match="names no window"):
            window_slots(bad)


def test_founders_all_of_this_release_form_a_cluster_of_the_new_window() -> None:
    nonce = fresh_nonce()
    assert window_slots(nonce) == WINDOW_SLOTS
    formed = formation_id({"a": fresh_nonce(), "b": fresh_nonce()})
    assert window_slots(formed) == WINDOW_SLOTS
    # One founder of an earlier release (its nonce unmarked) hashes the same nonces and
    # appends nothing: the others derive that same id, of the legacy window.
    mixed = formation_id({"a": nonce, "b": "0123456789abcdef"})
    assert window_slots(mixed) == LEGACY_WINDOW_SLOTS and len(mixed) == 16
    # A nonce is opaque to an earlier release, so a malformed mark is never an error.
    assert window_slots(formation_id({"a": nonce, "b": "x/w0"})) == LEGACY_WINDOW_SLOTS


def test_an_ident_of_a_windowed_cluster_is_one_an_earlier_release_drops() -> None:
    windowed = protocol.Ident(("a",), f"0123456789abcdef/w{WINDOW_SLOTS}")
    name, fields = protocol.decode_runtime(protocol.encode_ident(windowed))
    assert name == "ident" and protocol.decode_ident(fields) == windowed
    assert fields[1] == [windowed.formation]
    # The earlier release's check (paxoskv before windows: decode_ident) refused it.
    assert type(fields[1]) is not str
    legacy = protocol.Ident(("a",), "0123456789abcdef")
    _, fields = protocol.decode_runtime(protocol.encode_ident(legacy))
    assert fields[1] == legacy.formation  # as every release sent it
    bad_ones = (
        [["a"], "f/w64", False],  # a window outside a list: none we send
        [["a"], ["f"], False],  # a list without one
        [["a"], ["f/w0"], False],  # a bad window
        [["a"], ["f/w64", "g"], False],
        [["a"], [7], False],
    )
    for bad in bad_ones:
        with pytest.raises(protocol.MalformedRuntimeMessage):
            protocol.decode_ident(bad)


def test_a_windowed_genesis_is_one_an_earlier_release_refuses(tmp_path: Path) -> None:
    """Kept as its idents carry it: a whole cluster downgraded at once opened its data dirs
    and ran a log of 64 at 16, which nothing else caught (review)."""
    formation = f"0123456789abcdef/w{WINDOW_SLOTS}"
    save_genesis(tmp_path, ("a",), "c", formation)
    kept = json.loads((tmp_path / GENESIS_FILE).read_text())
    assert kept["formation"] == [formation]
    # The earlier release's check (read_genesis before windows) refused all but a string.
    assert type(kept["formation"]) is not str
    found = read_genesis(tmp_path, None)
    assert found is not None and found.formation == formation
    save_genesis(tmp_path, ("a",), "c", "0123456789abcdef")
    assert json.loads((tmp_path / GENESIS_FILE).read_text())["formation"] == "0123456789abcdef"


@pytest.mark.parametrize("formation", ["f/w0", "f/w64", ["f"], ["f/w0"], ["f/w64", "g"]], ids=repr)
def test_a_genesis_naming_a_bad_window_or_in_the_wrong_form_is_damaged(
    tmp_path: Path, formation: object
) -> None:
    (tmp_path / GENESIS_FILE).write_text(json.dumps({"voters": ["a"], "formation": formation}))
    with pytest.raises(ConfigurationError, match="is damaged"):
        read_genesis(tmp_path, None)


async def test_a_cluster_formed_now_keeps_its_window_over_restarts_and_joiners(
    tmp_path: Path,
) -> None:
    cluster = MemoryCluster(tmp_path)
    try:
        await bootstrap(cluster, tmp_path)
        assert windows(cluster) == {WINDOW_SLOTS}
        kept = read_genesis(tmp_path / "n1", None)
        assert kept is not None and window_slots(kept.formation) == WINDOW_SLOTS
        await cluster.nodes["n1"].set("k", "v")
        await cluster.close()
        for node_id in IDS:  # restarted from their data dirs alone
            await cluster.start(node_id)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        joiner = await cluster.start("n4", join=True, **on_disk(tmp_path, "n4"))
        await joiner.wait_ready(5)
        assert windows(cluster) == {WINDOW_SLOTS}
        # A configuration change takes effect 64 slots on: the leader pads up to it.
        leader = cluster.leader()
        assert leader is not None and leader.replica.engine is not None
        engine = leader.replica.engine
        await eventually(lambda: "n4" in engine.configuration.voters, 5, "n4 promoted")
        await leader.set("k", "after the change")
        await caught_up(joiner, applied(leader))
        assert await values_everywhere(list(cluster.nodes.values()), "k") == {"after the change"}
    finally:
        await cluster.close()


async def test_a_founder_of_an_earlier_release_makes_the_cluster_one_of_the_legacy_window(
    tmp_path: Path,
) -> None:
    """n3 was part-way through bootstrapping under the earlier release (its kept nonce is
    unmarked), so all three derive one formation, of the window every founder runs."""
    (tmp_path / "n3").mkdir()
    kept = {"expect": 3, "met": ["n3"], "nonce": "0123456789abcdef", "nonces": {}}
    (tmp_path / "n3" / BOOTSTRAP_FILE).write_text(json.dumps(kept))
    cluster = MemoryCluster(tmp_path)
    try:
        await bootstrap(cluster, tmp_path)
        assert windows(cluster) == {LEGACY_WINDOW_SLOTS}
        formations = {read_genesis(tmp_path / node_id, None) for node_id in IDS}
        assert len(formations) == 1
        await cluster.nodes["n1"].set("k", "v")
        assert await values_everywhere(list(cluster.nodes.values()), "k") == {"v"}
    finally:
        await cluster.close()


async def test_a_cluster_formed_before_windows_runs_on_with_the_legacy_one(
    tmp_path: Path,
) -> None:
    """Its formation id (kept in the genesis and the founders' life records) has no mark."""
    cluster = MemoryCluster(tmp_path)
    try:
        await bootstrap(cluster, tmp_path)
        await cluster.nodes["n1"].set("k", "v")
    finally:
        await cluster.close()
    for node_id in IDS:
        path = tmp_path / node_id / GENESIS_FILE
        kept = json.loads(path.read_text())
        (formation,) = kept["formation"]  # (kept in a list: window.formation_field)
        kept["formation"] = formation.partition("/")[0]
        path.write_text(json.dumps(kept))
        path = tmp_path / node_id / LIFE_FILE
        kept = json.loads(path.read_text())
        kept["founded"] = kept["founded"].partition("/")[0]
        path.write_text(json.dumps(kept))
    cluster = MemoryCluster(tmp_path)
    try:
        for node_id in IDS:
            await cluster.start(node_id)
        for node in cluster.nodes.values():
            await node.wait_ready(5)
        assert windows(cluster) == {LEGACY_WINDOW_SLOTS}
        await cluster.nodes["n2"].set("k", "v2")
        assert await values_everywhere(list(cluster.nodes.values()), "k") == {"v2"}
    finally:
        await cluster.close()
