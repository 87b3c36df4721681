"""kill -9 the leader of a cluster of real processes under load; nothing acknowledged is lost.

Writers and readers run as thin clients in this process, record every call with its outcome
(unknown when it timed out), and the whole history goes through the linearizability checker.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paxoskv import connect
from paxoskv.errors import NoQuorum
from simulations.kv_history import Operation, dump_history
from simulations.linearizability import check_history
from tests.process.cluster_processes import ProcessCluster

pytestmark = pytest.mark.slow

KEYS = ("a", "b", "c", "d")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    processes = ProcessCluster(tmp_path)
    try:
        processes.start_all()
        yield processes
    finally:
        processes.stop_all()


async def _worker(
    client_index: int,
    client: object,
    history: list[Operation],
    stop_at: float,
    counter: itertools.count[int],
) -> None:
    api = client  # a paxoskv Client
    while time.monotonic() < stop_at:
        key = KEYS[next(counter) % len(KEYS)]
        if next(counter) % 3 == 0:
            start = time.monotonic()
            try:
                value = await api.get(key)  # type: ignore[attr-defined]
            except NoQuorum:
                continue  # a read with no answer constrains nothing
            history.append(
                Operation(client_index, "get", key, None, value, start, time.monotonic())
            )
        else:
            value = f"{client_index}-{next(counter)}"
            start = time.monotonic()
            try:
                await api.set(key, value)  # type: ignore[attr-defined]
                end: float | None = time.monotonic()
            except NoQuorum:
                end = None
            history.append(Operation(client_index, "set", key, value, None, start, end))


async def _run_load(cluster: ProcessCluster, seconds: float, history: list[Operation]) -> None:
    counter = itertools.count()
    stop_at = time.monotonic() + seconds
    clients = [connect(cluster.client_config(request_timeout_s=3.0)) for _ in range(4)]
    for client in clients:
        await client.start()
    try:
        await asyncio.gather(
            *(_worker(i, c, history, stop_at, counter) for i, c in enumerate(clients))
        )
    finally:
        for client in clients:
            await client.close()


async def _leader(cluster: ProcessCluster) -> str:
    async with connect(cluster.client_config()) as client:
        for _ in range(100):
            leaders = [m.node_id for m in await client.members() if m.is_leader]
            if leaders:
                return leaders[0]
            await asyncio.sleep(0.1)
    raise AssertionError("no leader")


async def test_acknowledged_writes_survive_kill_9_of_the_leader(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    history: list[Operation] = []
    try:
        async with connect(cluster.client_config(request_timeout_s=15.0)) as client:
            await client.set("ready", True)  # the cluster formed
        leader = await _leader(cluster)
        load = asyncio.create_task(_run_load(cluster, 6.0, history))
        await asyncio.sleep(2.0)
        cluster.kill(leader)  # SIGKILL: no goodbye, unsynced nothing (durable mode fsyncs)
        killed_at = time.monotonic()
        await load
        acked_after_kill = [
            op for op in history if op.op == "set" and op.return_time and op.call_time > killed_at
        ]
        assert acked_after_kill, "writes did not resume after the leader was killed"
        cluster.start(leader)
        async with connect(cluster.client_config()) as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                members = {m.node_id: m for m in await client.members()}
                if members.get(leader) and members[leader].state == "up":
                    break
                await asyncio.sleep(0.2)
            for key in KEYS:  # final reads: part of the history the checker judges
                start = time.monotonic()
                value = await client.get(key)
                history.append(Operation(99, "get", key, None, value, start, time.monotonic()))
    except BaseException:
        print(cluster.log_tail())
        raise
    finally:
        dump_history(history, tmp_path / "history.jsonl")
    verdict = check_history(history, timeout_s=60)
    assert verdict.ok, verdict.explanation()
    writes = [op for op in history if op.op == "set" and op.return_time is not None]
    assert len(writes) > 50
