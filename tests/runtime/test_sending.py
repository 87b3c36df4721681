"""The runtime's send path: a step's burst goes out at once, and a full socket keeps order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from paxoskv import Node
from paxoskv.errors import ConfigurationError
from paxoskv.paxos import effects as fx
from paxoskv.paxos.messages import decode_message
from paxoskv.runtime import protocol
from paxoskv.runtime.clock import now as clock_now
from paxoskv.transport import MemoryNetwork, MemoryTransport
from tests.runtime.cluster import MemoryCluster, eventually


class FillingTransport(MemoryTransport):
    """A memory transport whose socket buffer is full while ``full`` is clear.

    Like the UDP endpoint, it sends nothing of a burst it cannot take: it hands back a
    coroutine that sends once there is room, and records the order bursts went out in.
    """

    room: asyncio.Event
    sent: list[bytes]
    deferred: int

    def send_soon(
        self, messages: Sequence[tuple[str | None, bytes]]
    ) -> Coroutine[Any, Any, None] | None:
        if self.room.is_set():
            self.sent.extend(payload for _, payload in messages)
            return super().send_soon(messages)
        self.deferred += 1
        return self._when_room(list(messages))

    async def _when_room(self, messages: list[tuple[str | None, bytes]]) -> None:
        await self.room.wait()
        self.sent.extend(payload for _, payload in messages)
        super().send_soon(messages)


async def test_sends_wait_for_a_full_socket_in_order_and_nothing_is_lost() -> None:
    cluster = MemoryCluster()
    transport = FillingTransport(cluster.network, "n1")
    cluster.network._nodes["n1"] = transport  # in place of the one attach() would make
    transport.room, transport.sent, transport.deferred = asyncio.Event(), [], 0
    transport.room.set()
    node = Node(cluster.config("n1", bootstrap_expect=3), transport=transport)
    await node.start()
    cluster.nodes["n1"] = node
    for node_id in ("n2", "n3"):
        await cluster.start(node_id, bootstrap_expect=3)
    try:
        for each in cluster.nodes.values():
            await each.wait_ready(5)
        await node.set("before", 1)
        transport.room.clear()
        # Sends queued before the hook and not yet flushed (a hello and an ident may be) go
        # first, so they count as queued first.
        queued: list[bytes] = [payload for _, payload in node.replica._outbox]

        class RecordingOutbox(deque[tuple[str | None, bytes]]):
            """The outbox, noting each send as it is queued (by _queue or by a step)."""

            def append(self, item: tuple[str | None, bytes]) -> None:
                queued.append(item[1])
                super().append(item)

        node.replica._outbox = RecordingOutbox(node.replica._outbox)
        writes = [asyncio.create_task(node.set(f"k{i}", i)) for i in range(20)]
        await eventually(lambda: transport.deferred == 1, what="a send to find the socket full")
        await eventually(lambda: len(queued) > 3, what="more sends to queue behind it")
        assert transport.deferred == 1  # one burst waits; the rest queue behind it, not beside
        sent_before = len(transport.sent)
        transport.room.set()
        assert await asyncio.wait_for(asyncio.gather(*writes), 10) is not None
        went = transport.sent[sent_before:]
        count = min(len(went), len(queued))
        assert count >= 4 and went[:count] == queued[:count]  # in the order they were queued
        assert (await node.get("k19")) == 19
    finally:
        await cluster.close()


async def test_a_transport_too_small_for_a_slot_is_refused_at_start(tmp_path: Path) -> None:
    network = MemoryNetwork(max_payload_bytes=8_000)
    config = MemoryCluster(tmp_path).config("n1", bootstrap_expect=1)
    node = Node(config, transport=network.attach("n1"))
    with pytest.raises(ConfigurationError, match=r"at most 8000 bytes.*max_datagram_bytes"):
        await node.start()
    # Nothing is left holding the data dir: the same node starts on a transport that fits.
    async with Node(config, transport=MemoryNetwork().attach("n1")) as again:
        await again.wait_ready(5)
        assert await again.set("k", "v") > 0


async def test_a_bug_while_handling_a_message_stops_the_node(
    memory_cluster: MemoryCluster,
) -> None:
    """Deliveries are handled inside the transport's receive path: a step that raises must
    stop its node for good (fail-stop), not vanish into the event loop's error log."""
    leader = await _leader_of(memory_cluster)
    victim = next(node for node in memory_cluster.nodes.values() if node is not leader)
    engine = victim.replica.engine
    assert engine is not None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the engine")

    victim.replica.engine = _Overriding(engine, receive=broken)  # type: ignore[assignment]
    await leader.set("k", "v")  # the other follower makes the quorum
    await eventually(lambda: victim.replica.stopped.is_set(), what="the node to stop")
    assert isinstance(victim.replica.failure, RuntimeError)
    assert await leader.set("k2", "v2") > 0  # the rest of the cluster goes on


class _Overriding:
    """An engine with some of its methods replaced, everything else its own.

    A proxy rather than assigning to the engine's attributes: the compiled build's engine
    has no instance dictionary, so its methods cannot be patched on the instance.
    """

    def __init__(self, engine: Any, **methods: Any) -> None:
        self._engine = engine
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


async def _leader_of(cluster: MemoryCluster) -> Node:
    await eventually(lambda: cluster.leader() is not None, what="a leader")
    leader = cluster.leader()
    assert leader is not None
    return leader


async def test_persists_made_durable_by_one_sync_reach_the_engine_in_one_step(
    memory_cluster: MemoryCluster,
) -> None:
    """One sync usually covers two persists of a step; the engine hears of both at once."""
    replica = (await _leader_of(memory_cluster)).replica
    told: list[int] = []
    real_durable, before = replica._durable, replica._durable_upto
    replica._durable = told.append  # type: ignore[method-assign]
    try:
        replica._synced(before + 1, None)  # two syncs told in one loop turn
        replica._synced(before + 2, None)
        await eventually(lambda: bool(told), what="the engine to hear")
        assert told == [before + 2]
    finally:
        replica._durable = real_durable  # type: ignore[method-assign]
        replica._durable_upto = before  # those ids were made up: nothing beyond is durable


async def test_a_follower_synced_on_the_loop_replies_in_the_step_that_received_the_accept(
    memory_cluster: MemoryCluster,
) -> None:
    """In memory mode every sync runs on the loop (``sync_here``): the accept's reply goes
    out before the delivery that brought the accept returns, not a turn of the loop later."""
    leader = await _leader_of(memory_cluster)
    follower = next(node for node in memory_cluster.nodes.values() if node is not leader)
    replica, transport = follower.replica, follower.replica.transport
    assert transport is not None and replica._committer is not None
    # A quiet disk, whatever the syncs before took (a preempted one raises the average):
    # sync_here's rules are tested in tests/storage; this is what a step does with its sync.
    committer = replica._committer
    committer._sync_s = committer._last_sync_s = 0.0
    committer._idle_s = 1.0
    events: list[str] = []

    def kinds(payloads: Sequence[bytes]) -> list[str]:
        return [type(decode_message(p[1:])).__name__ for p in payloads if p[:1] == protocol.PAXOS]

    real_deliveries, real_send_soon = replica._on_deliveries, transport.send_soon

    def deliveries(batch: list[Any]) -> None:
        events.extend(f"in {kind}" for kind in kinds([payload for _, payload in batch]))
        real_deliveries(batch)
        events.append("out")

    def send_soon(messages: Sequence[tuple[str | None, bytes]]) -> Any:
        events.extend(f"send {kind}" for kind in kinds([payload for _, payload in messages]))
        return real_send_soon(messages)

    transport.deliver_to(deliveries)
    transport.send_soon = send_soon  # type: ignore[method-assign]
    try:
        await leader.set("k", "v")
    finally:
        transport.deliver_to(real_deliveries)
        transport.send_soon = real_send_soon  # type: ignore[method-assign]
    accept = events.index("in Accept")
    assert "send Accepted" in events[accept : events.index("out", accept)], events


async def test_answers_carried_out_in_bulk_do_what_one_by_one_does(tmp_path: Path) -> None:
    """_carry_out_all's inline answers against _carry_out's: futures and listeners alike."""
    from paxoskv import Config
    from paxoskv.paxos import effects as fx
    from paxoskv.runtime.replica import Replica

    loop = asyncio.get_running_loop()
    outcomes = []
    for bulk in (True, False):
        config = Config(node_id="a", durability="memory")
        replica = Replica(config)
        heard: list[fx.Answer] = []

        def listener(answer: fx.Answer, heard: list[fx.Answer] = heard) -> bool:
            heard.append(answer)
            return answer.seq == 3  # the serving side's: True when the answer was its own

        replica.add_answer_listener(listener)
        waiting = {seq: loop.create_future() for seq in (1, 2)}
        waiting[2].cancel()  # its caller gave up
        for seq, future in waiting.items():
            replica._answers[("c", seq)] = (future, 0.0, 1.0)
        effects: list[fx.Effect] = [
            fx.Answers(["c", "c"], [1, 2], [b"r1", b"r2"]),
            fx.LeaderChanged("b"),
            fx.Answers(["c", "c"], [3, 4], [b"r3", b"r4"]),
        ]
        if bulk:
            replica._carry_out_all(effects)
        else:
            for effect in effects:
                replica._carry_out(effect)
        outcomes.append((waiting[1].result(), heard, dict(replica._answers)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == b"r1" and [a.seq for a in outcomes[0][1]] == [2, 3, 4]


async def test_a_timer_that_finds_nothing_due_re_arms_without_a_tick(
    memory_cluster: MemoryCluster,
) -> None:
    """When the one timer fires and the engine's deadline has moved on (a step re-arms it
    whenever the deadline moves, but a tick may still find nothing due), or it fires before
    its deadline (uvloop rounds a delay to whole milliseconds, so one under
    half a millisecond fired at once), it re-arms for the deadline, no sooner, instead of
    running an engine step for nothing. At its deadline it ticks."""
    replica = (await _leader_of(memory_cluster)).replica
    engine = replica.engine
    assert engine is not None
    ticks: list[float] = []
    real_tick = engine.tick

    def tick(now: float) -> Any:
        ticks.append(now)
        return real_tick(now)

    overriding = _Overriding(engine, tick=tick)
    replica.engine = overriding  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    try:
        # Nothing due for a while (a heartbeat just went), then no await until the end.
        await eventually(lambda: engine.next_deadline() > clock_now() + 0.005)
        ticks.clear()  # (the real timer may have ticked meanwhile)
        for armed_for in (engine.next_deadline() - 1.0, engine.next_deadline()):
            if replica._timer is not None:
                replica._timer.cancel()
            replica._timer_deadline = armed_for  # moved on since; or fired early
            replica._on_timer()
            assert ticks == []
            timer, deadline = replica._timer, engine.next_deadline()
            assert timer is not None and replica._timer_deadline == deadline
            assert timer.when() - loop.time() >= deadline - clock_now() - 0.001  # not sooner
        replica._timer.cancel()
        due = clock_now() - 0.001
        overriding.next_deadline = lambda: due
        replica._on_timer()  # at (just after) its deadline
        assert len(ticks) == 1
    finally:
        replica.engine = engine


async def test_a_step_re_arms_the_timer_when_it_moves_the_deadline_later(
    memory_cluster: MemoryCluster,
) -> None:
    """A step that moves the engine's deadline later re-arms the timer there: left armed at
    the earlier deadline, the leader woke every 2 ms under one client's writes only to re-arm.
    A step that leaves the deadline where it was keeps the timer it had."""
    replica = (await _leader_of(memory_cluster)).replica
    engine = replica.engine
    assert engine is not None
    await eventually(lambda: engine.next_deadline() > clock_now() + 0.005)
    later = engine.next_deadline()
    replica.engine = _Overriding(engine, next_deadline=lambda: later)  # type: ignore[assignment]
    try:
        if replica._timer is not None:
            replica._timer.cancel()
        replica._arm_timer(later - 0.004, clock_now())  # a deadline a step has since moved
        replica._step([])
        kept = replica._timer
        assert kept is not None and replica._timer_deadline == later
        replica._step([])
        assert replica._timer is kept
    finally:
        replica.engine = engine


async def test_a_send_queued_during_a_step_goes_out_with_the_step_and_schedules_nothing(
    memory_cluster: MemoryCluster,
) -> None:
    """The step flushes its outbox as it ends: a send queued while it runs (here by a read's
    callback) is out when the step returns, with no flush callback left behind on the loop."""
    replica = (await _leader_of(memory_cluster)).replica
    assert replica.transport is not None
    payload = protocol.encode_runtime("whois")
    replica._reads[10**9] = lambda _index: replica.send_runtime(None, payload)
    scheduled: list[Any] = []
    real_call_soon = replica._loop.call_soon

    def call_soon(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return real_call_soon(callback, *args, **kwargs)

    sent_before = replica.transport.stats.sent_frames
    replica._loop.call_soon = call_soon  # type: ignore[method-assign]
    try:
        replica._step([fx.ReadReady(10**9)])
    finally:
        replica._loop.call_soon = real_call_soon  # type: ignore[method-assign]
    assert replica.transport.stats.sent_frames > sent_before
    assert not replica._outbox
    assert replica._flush_outbox not in scheduled


async def test_a_timer_is_never_armed_to_fire_before_its_deadline(
    memory_cluster: MemoryCluster,
) -> None:
    """A delay under a millisecond is armed as a whole millisecond: uvloop rounds delays to
    the nearest millisecond and ran one under half a millisecond at once."""
    replica = (await _leader_of(memory_cluster)).replica
    armed: list[float] = []
    real_call_later = replica._loop.call_later

    def call_later(delay: float, callback: Any, *args: Any) -> Any:
        armed.append(delay)
        return real_call_later(delay, callback, *args)

    replica._loop.call_later = call_later  # type: ignore[method-assign]
    try:
        now = clock_now()
        for delay in (0.0003, 0.0014):
            if replica._timer is not None:
                replica._timer.cancel()
            replica._arm_timer(now + delay, now)
    finally:
        replica._loop.call_later = real_call_later  # type: ignore[method-assign]
    assert armed == [0.001, 0.002]


async def test_a_leader_of_three_voters_leaves_its_own_syncs_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In durable mode the leader's own vote is one of three: its loop must stay free to count
    the followers' votes, which choose the slot without it if its disk is the slow one."""
    from paxoskv.runtime import replica as replica_module

    monkeypatch.setattr(replica_module, "LAZY_SYNC_S", 60.0)  # no timer-driven syncs here
    cluster = MemoryCluster(tmp_path)
    for node_id in ("n1", "n2", "n3"):
        await cluster.start(node_id, bootstrap_expect=3, durability="durable")
    calls: list[tuple[str, bool]] = []  # (how, whether its node led at the time)
    try:
        for node in cluster.nodes.values():
            await node.wait_ready(5)
            replica, committer = node.replica, node.replica._committer
            assert committer is not None

            def sync_here(replica: Any = replica, real: Any = committer.sync_here) -> bool:
                calls.append(("here", replica.engine.is_leader))
                return bool(real())

            def request_sync(replica: Any = replica, real: Any = committer.request_sync) -> None:
                calls.append(("thread", replica.engine.is_leader))
                real()

            committer.sync_here = sync_here  # type: ignore[method-assign]
            committer.request_sync = request_sync  # type: ignore[method-assign]
        for index in range(5):  # (leadership may move meanwhile: each call says who led)
            await (await _leader_of(cluster)).set(f"k{index}", index)
        assert ("thread", True) in calls and ("here", True) not in calls, calls
    finally:
        await cluster.close()


async def test_a_single_voter_leader_still_syncs_on_the_loop(tmp_path: Path) -> None:
    """With one voter the leader's own sync is the quorum: it is tried on the loop first."""
    cluster = MemoryCluster(tmp_path)
    leader = await cluster.start("n1", bootstrap_expect=1, durability="durable")
    try:
        await leader.wait_ready(5)
        await _leader_of(cluster)
        committer = leader.replica._committer
        assert committer is not None
        calls: list[str] = []
        real_here = committer.sync_here

        def sync_here() -> bool:
            calls.append("here")
            return real_here()

        committer.sync_here = sync_here  # type: ignore[method-assign]
        await leader.set("k", "v")
        assert "here" in calls
    finally:
        await cluster.close()


async def test_a_sync_that_ends_after_the_loop_closed_raises_nothing_on_the_writer_thread(
    memory_cluster: MemoryCluster,
) -> None:
    """An application may close its loop without stopping the node; the writer thread's sync
    then ends with no loop to tell. That printed "Event loop is closed" from the thread."""
    import threading

    from paxoskv.errors import StorageFailed

    replica = (await _leader_of(memory_cluster)).replica
    real_loop, before = replica._loop, replica._durable_upto
    closed = asyncio.new_event_loop()
    closed.close()
    raised: list[BaseException] = []
    replica._loop = closed
    try:
        for error in (None, StorageFailed("journal", OSError(5, "EIO"))):
            thread = threading.Thread(target=_capture, args=(raised, replica._synced, 10**9, error))
            thread.start()
            thread.join(timeout=10)
        assert raised == []
    finally:
        replica._loop = real_loop
        replica._durable_upto = before  # that id was made up: nothing beyond is durable
        replica._durable_call_due = False


def _capture(raised: list[BaseException], call: Any, *args: Any) -> None:
    try:
        call(*args)
    except BaseException as error:  # what the thread would have printed
        raised.append(error)
