"""``paxos-kv dump`` and ``load`` as an operator runs them, on real clusters on loopback.

The disaster the commands exist for: a cluster loses two of its three voters' disks for good.
Nothing can change it any more (even removing the lost voters needs a quorum), so the
survivor's data dir is dumped offline and loaded into a new cluster. Every type a value or key
may have comes back as it was; a leased key comes back on a lease of its own ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from paxoskv import connect
from paxoskv.cli import main
from paxoskv.cli.local_cluster import ClusterAddress, LocalCluster
from paxoskv.state.results import KeyValue

VALUES: dict[Any, Any] = {
    "plain": "hello",
    "number": 5,
    b"raw\x00key": b"\x00\xffbytes",
    ("session", "abc"): {"user": 7, "pair": (1, 2), "list": [1, 2], "nested": {b"k": None}},
    "big": "x" * 45_000,  # near a request's limit: goes alone
    **{f"many/{i:04d}": f"value {i}" * 20 for i in range(600)},  # several txns' worth
}
LEASED = {"leased/a": "on a lease", "leased/b": "on the same lease"}
LEASE_TTL_S = 300.0


def kv(cluster: LocalCluster, *args: str) -> Result:
    """``paxos-kv ARGS`` in-process, pointed at ``cluster``."""
    unset = {name: None for name in os.environ if name.startswith("PAXOS_KV_")}
    return CliRunner().invoke(main, [*args, *cluster.address.args()], env=unset)


def offline(*args: str) -> Result:
    unset = {name: None for name in os.environ if name.startswith("PAXOS_KV_")}
    return CliRunner().invoke(main, list(args), env=unset)


async def _fill(cluster: LocalCluster) -> None:
    async with connect(cluster.address.client_config(timeout_s=10.0)) as client:
        for key, value in VALUES.items():
            await client.set(key, value)
        lease = await client.grant_lease(LEASE_TTL_S)
        for key, value in LEASED.items():
            await client.set(key, value, lease=lease)


async def _entries(cluster: LocalCluster) -> list[KeyValue]:
    async with connect(cluster.address.client_config(timeout_s=10.0)) as client:
        return await client.items()


def _as_loaded(entries: list[KeyValue]) -> dict[Any, tuple[Any, bool]]:
    """What a load keeps of each key: its value, and whether it is on a lease."""
    return {entry.key: (entry.value, entry.lease_id is not None) for entry in entries}


@contextlib.contextmanager
def _filled(
    base: Path, voters: int, fill: Callable[[LocalCluster], Awaitable[None]]
) -> Iterator[LocalCluster]:
    """A running cluster of ``voters`` on data dirs under ``base``, filled by ``fill``."""
    with LocalCluster(base, voters=voters, address=ClusterAddress.fresh(), durability="os") as c:
        c.start()
        c.wait_ready(30.0)
        asyncio.run(fill(c))
        yield c


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three voters with the data, on data dirs the tests may dump while it runs."""
    base = tmp_path_factory.mktemp("dump-source")
    with LocalCluster(base, voters=3, address=ClusterAddress.fresh(), durability="os") as running:
        running.start()
        running.wait_ready(30.0)
        asyncio.run(_fill(running))
        yield running


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LocalCluster]:
    """A new, empty cluster of one voter to load into."""
    with LocalCluster(tmp_path, voters=1, address=ClusterAddress.fresh()) as running:
        running.start()
        running.wait_ready(30.0)
        yield running


def test_a_running_clusters_dump_loads_into_a_new_cluster_as_it_was(
    source: LocalCluster, target: LocalCluster, tmp_path: Path
) -> None:
    dump = tmp_path / "all.dump"
    dumped = kv(source, "dump", str(dump))
    assert dumped.exit_code == 0, dumped.output
    assert f"dumped {len(VALUES) + len(LEASED):,} keys" in dumped.stdout
    assert "1 leases' ttls are not in it" in dumped.stderr  # a listing does not carry them

    without_ttl = kv(target, "load", str(dump))
    assert without_ttl.exit_code == 0, without_ttl.output
    assert f"loaded {len(VALUES):,} keys (0 new leases)" in without_ttl.stdout
    assert "left out 2 keys on leases" in without_ttl.stderr
    assert _as_loaded(asyncio.run(_entries(target))) == {k: (v, False) for k, v in VALUES.items()}

    with_ttl = kv(target, "load", str(dump), "--lease-ttl", "60")
    assert with_ttl.exit_code == 0, with_ttl.output
    assert f"loaded {len(VALUES) + len(LEASED):,} keys (1 new leases)" in with_ttl.stdout
    loaded = asyncio.run(_entries(target))
    assert _as_loaded(loaded) == {
        **{k: (v, False) for k, v in VALUES.items()},
        **{k: (v, True) for k, v in LEASED.items()},
    }
    leases = {entry.lease_id for entry in loaded if entry.lease_id is not None}
    assert len(leases) == 1  # the keys that shared a lease share the new one


def test_a_prefix_dumps_only_the_keys_under_it(
    source: LocalCluster, target: LocalCluster, tmp_path: Path
) -> None:
    dump = tmp_path / "many.dump"
    assert kv(source, "dump", str(dump), "many/").exit_code == 0
    assert kv(target, "load", str(dump)).exit_code == 0
    loaded = asyncio.run(_entries(target))
    assert {entry.key for entry in loaded} == {k for k in VALUES if str(k).startswith("many/")}


def test_a_running_nodes_data_dir_is_refused_and_left_alone(
    source: LocalCluster, tmp_path: Path
) -> None:
    data_dir = source.base_dir / "n1"
    before = sorted(os.listdir(data_dir))
    refused = offline("dump", "--data-dir", str(data_dir), str(tmp_path / "x.dump"))
    assert refused.exit_code == 4, refused.output
    assert "is in use by process" in refused.stderr
    assert sorted(os.listdir(data_dir)) == before
    assert not (tmp_path / "x.dump").exists()


async def _fill_then_last_writes(cluster: LocalCluster) -> None:
    await _fill(cluster)
    async with connect(cluster.address.client_config(timeout_s=10.0)) as client:
        for number in range(3):  # their commits may not reach every follower before the kill
            await client.set(f"zz/last/{number}", number)


def test_the_survivor_of_a_lost_quorum_is_dumped_offline_and_loaded_into_a_new_cluster(
    tmp_path: Path, target: LocalCluster
) -> None:
    """Every node is killed at once right after the last acknowledged write, so the survivor
    may not have heard that its last slots were chosen: the dump holds what it knew chosen,
    and --with-accepted what it had accepted from its last leader besides."""
    with _filled(tmp_path / "lost", 3, _fill_then_last_writes) as doomed:
        for node_id in ("n1", "n2", "n3"):
            doomed.kill(node_id)
        survivor = doomed.base_dir / "n3"
        doomed.stop()
    for lost in ("n1", "n2"):
        shutil.rmtree(doomed.base_dir / lost)  # two disks gone for good: no quorum, ever
    listing = sorted((path.name, path.stat().st_size) for path in survivor.iterdir())
    contents = {path.name: path.read_bytes() for path in survivor.iterdir()}

    dump, wider = tmp_path / "survivor.dump", tmp_path / "wider.dump"
    dumped = offline("dump", "--data-dir", str(survivor), str(dump))
    assert dumped.exit_code == 0, dumped.output
    assert "leases' ttls" not in dumped.stderr  # a data dir's dump holds its leases' ttls
    with_accepted = offline("dump", "--data-dir", str(survivor), "--with-accepted", str(wider))
    assert with_accepted.exit_code == 0, with_accepted.output
    assert sorted((path.name, path.stat().st_size) for path in survivor.iterdir()) == listing
    assert {path.name: path.read_bytes() for path in survivor.iterdir()} == contents

    loaded = kv(target, "load", str(dump))
    assert loaded.exit_code == 0, loaded.output
    assert "(1 new leases)" in loaded.stdout
    chosen = _as_loaded(asyncio.run(_entries(target)))
    assert kv(target, "load", str(wider)).exit_code == 0
    widened = _as_loaded(asyncio.run(_entries(target)))
    expected = {
        **{k: (v, False) for k, v in VALUES.items()},
        **{k: (v, True) for k, v in LEASED.items()},
        **{f"zz/last/{n}": (n, False) for n in range(3)},
    }
    assert chosen.items() <= widened.items() <= expected.items()  # nothing not written
    before_last = {k: v for k, v in expected.items() if not str(k).startswith("zz/")}
    assert before_last.items() <= chosen.items()


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda good: good[: len(good) // 2], "cut short"),
        (lambda good: good + b"\x01", "bytes after its end"),
        (lambda good: b'{"not": "a dump"}', "is not a paxos-kv dump"),
        (lambda good: b"", "ends before its header"),
    ],
    ids=["cut", "trailing", "other-file", "empty"],
)
def test_a_damaged_dump_is_refused_before_anything_is_written(
    source: LocalCluster, target: LocalCluster, tmp_path: Path, make: Any, said: str
) -> None:
    good = tmp_path / "good.dump"
    assert kv(source, "dump", str(good), "many/").exit_code == 0
    bad = tmp_path / "bad.dump"
    bad.write_bytes(make(good.read_bytes()))
    refused = kv(target, "load", str(bad))
    assert refused.exit_code == 2, refused.output
    assert said in refused.stderr and "Traceback" not in refused.output
    assert asyncio.run(_entries(target)) == []


def test_operator_mistakes_say_what_is_wrong(tmp_path: Path) -> None:
    not_a_node = tmp_path / "empty"
    not_a_node.mkdir()
    cases = [
        (["dump", "--data-dir", str(tmp_path / "missing"), "x"], 2, "does not exist"),
        (["dump", "--data-dir", str(not_a_node), "x"], 2, "holds no journal and no snapshot"),
        (["dump", str(tmp_path / "no" / "such" / "x")], 2, "is not a directory"),
        (["load", str(tmp_path / "missing.dump")], 2, "does not exist"),
        (["dump", "x", "--encryption-key-file", __file__], 2, "go with --data-dir"),
        (["dump", "x", "--with-accepted"], 2, "go with --data-dir"),
    ]
    for args, code, said in cases:
        result = offline(*args)
        assert (result.exit_code, said in result.output) == (code, True), (args, result.output)


def test_a_dump_goes_to_standard_output_and_loads_from_standard_input(
    source: LocalCluster, target: LocalCluster, tmp_path: Path
) -> None:
    unset = {name: None for name in os.environ if name.startswith("PAXOS_KV_")}
    dumped = CliRunner().invoke(main, ["dump", "-", "many/", *source.address.args()], env=unset)
    assert dumped.exit_code == 0, dumped.stderr
    assert dumped.stderr.startswith("dumped 600 keys") and not (tmp_path / "-").exists()
    loaded = CliRunner().invoke(
        main, ["load", "-", *target.address.args()], input=dumped.stdout_bytes, env=unset
    )
    assert loaded.exit_code == 0, loaded.output
    assert "loaded 600 keys (0 new leases) from standard input" in loaded.stdout
    assert len(asyncio.run(_entries(target))) == 600


def test_a_damaged_data_dir_is_named_as_given_and_a_lost_genesis_is_not_needed(
    tmp_path: Path,
) -> None:
    """Errors named the scratch copy, deleted by then; a data dir whose genesis.json was lost
    was refused as holding no data, though its journal held it all (review)."""
    with _filled(tmp_path / "one", 1, _fill) as cluster:
        cluster.stop()
    data_dir = cluster.base_dir / "n1"

    no_genesis = tmp_path / "no-genesis"
    shutil.copytree(data_dir, no_genesis)
    (no_genesis / "genesis.json").unlink()
    dumped = offline("dump", "--data-dir", str(no_genesis), str(tmp_path / "a.dump"))
    assert dumped.exit_code == 0, dumped.output
    assert f"dumped {len(VALUES) + len(LEASED):,} keys" in dumped.stdout

    damaged = tmp_path / "damaged"
    shutil.copytree(data_dir, damaged)
    journal = sorted(damaged.glob("journal-*.log"))[0]
    middle = 4_096  # inside its records (the fill wrote some 170 KB)
    with journal.open("r+b") as file:
        file.seek(middle)
        byte = file.read(1)
        file.seek(middle)
        file.write(bytes([byte[0] ^ 0xFF]))
    refused = offline("dump", "--data-dir", str(damaged), str(tmp_path / "b.dump"))
    assert refused.exit_code == 4, refused.output
    assert str(damaged) in refused.stderr and "paxos-kv-offline-" not in refused.stderr
