"""Transport benchmark: frames/s and bytes/s over loopback multicast, next to bare sockets.

Run from the repository root:

    .venv/bin/python benchmarks/transport.py            # about a minute
    .venv/bin/python benchmarks/transport.py --quick    # a smoke run
    .venv/bin/python benchmarks/transport.py --sizes 100 --tag-costs   # the target's row, and
                                                        # what one HMAC tag costs, by each way

What is measured: one process, one sender and one receiver on a fresh 239.x group on
127.0.0.1 (nothing leaves loopback). The sender sends a window of 32 frames to the group, the
receiver takes them, and again, so the figure is the cost of the whole path -- send, kernel,
event loop, receive -- per frame on one core, without losses from overrunning the receiver
(any frame not received within a second is counted as lost and reported).

Variants, in alternating rounds so all see the same machine state (median of the rounds):

* ``bare socket``   -- plain blocking sockets, ``sendto``/``recvfrom``: the floor Python can
  reach at all, with no event loop. Information only: no node can be written this way;
* ``bare asyncio-dgram`` -- the same sockets through asyncio-dgram, raw payloads: what the
  issue first proposed to build on (one datagram per wake-up, a queue and a task switch each);
* ``bare asyncio drain`` -- raw payloads through the I/O our transport uses (``add_reader``,
  drain the socket on each wake-up, a bounded inbox, one ``await`` per frame taken): **the
  bare loop of the issue's target**, since a node is an asyncio program. The ratio to it is
  the cost of our own layer -- framing, tags, replay windows, peer learning, counters;
* ``bare asyncio drain, bursts`` -- the same, but the receiver takes everything waiting in
  one ``await`` (as ``receive_many`` does): the bare loop for the burst variant below;
* ``paxos-kv``      -- ``UdpTransport``, no secret: ``send_soon`` of one frame to everyone,
  as the runtime sends (it never awaits a send that the socket takes at once), and ``await
  receive`` per frame, as the bare drain takes them;
* ``paxos-kv hmac`` -- with a cluster secret: HMAC-SHA256 tags and replay windows;
* ``paxos-kv hmac, bursts`` -- the same frames through ``send_soon`` of the whole window and
  ``receive_many``;
* ``paxos-kv aes`` -- AES-GCM instead of HMAC.

Same work on both sides. Our sender is a full node: it has joined the group too, and loopback
is on (so that nodes on one host hear each other), so the kernel hands every send to two
sockets, the sender's own group socket included; a kernel filter (``drop_own_echo`` in
sockio.py) discards that copy before it wakes anyone. The bare sockets are set up the same
way -- the sender joins the group and attaches the same filter -- so the kernel does the same
work for them as for us. (Until this was changed the bare sender never joined the group, so
its figures left out the copy to the sender's socket that every node pays for.) Where the
filter is not available the transport reads and drops its echo, and so does the bare drain.
Nothing else differs: same group, ports picked the same way, same receive buffer size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio_dgram

from paxoskv.compiled import build_name
from paxoskv.transport import TransportSettings, UdpSettings, UdpTransport
from paxoskv.transport.base import Address
from paxoskv.transport.endpoint import FramedEndpoint
from paxoskv.transport.frames import FrameCodec, FrameOpener, FrameSealer, native_keyed
from paxoskv.transport.inbox import Inbox
from paxoskv.transport.sockio import SocketReader, drop_own_echo

WINDOW_FRAMES = 32
SECRET = b"benchmark-secret-0123456789abcdef"
SIZES_BYTES = (100, 1024, 8192)
RECEIVE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Timing:
    """One round: wall-clock and process CPU seconds, frames that never arrived, and the
    process's minor page faults (see :class:`Stopwatch`)."""

    wall_s: float
    cpu_s: float
    lost: int
    page_faults: int


class Stopwatch:
    """Wall clock and this process's CPU time (user + system) together.

    Sender, receiver and -- on loopback -- the kernel's delivery work all run in this one
    process, so CPU seconds are what the frames cost. Other processes on a shared machine
    stretch the wall clock, not that: the CPU rate is the steadier figure, and on an idle
    machine the two agree (the loop never sleeps).

    Minor page faults are counted too, because they are the one cost here that the code being
    measured does not decide: every datagram is read with ``recvfrom`` into a fresh buffer of
    the largest datagram size (64 KB) that is then shrunk to fit, and depending on how the
    process's heap happens to be laid out, glibc may hand the freed tail back to the kernel
    and fault fresh pages in for the next read -- two or three faults per datagram, which
    at 8 KB can add half to a frame's cost, for a bare loop and for ours alike. Which way it
    falls changes from one process to the next (seen: 6,500 faults in a run, or 116,000 for
    the same code), so compare variants within one run and look at this column before
    believing a difference.
    """

    def __init__(self) -> None:
        self.wall_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def stop(self, lost: int) -> Timing:
        wall_s = time.perf_counter() - self.wall_start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults_start
        return Timing(wall_s, time.process_time() - self.cpu_start, lost, faults)


Round = Callable[[bytes, int], Awaitable[Timing]]


def fresh_group() -> tuple[str, int]:
    chooser = random.SystemRandom()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return (
        f"239.{chooser.randrange(1, 255)}.{chooser.randrange(256)}.{chooser.randrange(1, 255)}",
        port,
    )


async def receive_window(receive: Callable[[], Awaitable[object]]) -> int:
    """Take one window of frames; how many did not come within the timeout.

    One ``asyncio.timeout`` per window, not ``wait_for`` per frame: in Python 3.11
    ``wait_for`` wraps each call in a new task, which would cost more than the frame.
    """
    received = 0
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            while received < WINDOW_FRAMES:
                await receive()
                received += 1
    except TimeoutError:
        pass
    return WINDOW_FRAMES - received


async def receive_window_in_bursts(receive_many: Callable[[int], Awaitable[list[Any]]]) -> int:
    """As :func:`receive_window`, taking whatever is waiting in each ``await``."""
    received = 0
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            while received < WINDOW_FRAMES:
                received += len(await receive_many(WINDOW_FRAMES - received))
    except TimeoutError:
        pass
    return WINDOW_FRAMES - received


def group_member(group: str, port: int) -> socket.socket:
    """A socket joined to the group on 127.0.0.1, set up as UdpTransport's group socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UdpSettings().receive_buffer_bytes)
    sock.bind((group, port))
    membership = socket.inet_aton(group) + socket.inet_aton("127.0.0.1")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    return sock


@dataclass(slots=True)
class BareSockets:
    """A sender (unicast socket plus its own group socket) and a receiving group member."""

    tx: socket.socket
    tx_group: socket.socket
    rx: socket.socket
    echo_filtered: bool

    def close(self) -> None:
        for sock in (self.tx, self.tx_group, self.rx):
            sock.close()


def bare_sockets(group: str, port: int) -> BareSockets:
    """What two UdpTransports set up, without them: the sender is a group member too, and the
    kernel drops its echo with the same filter (module docstring: same work on both sides)."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    tx.bind(("127.0.0.1", 0))
    tx_group = group_member(group, port)
    echo_filtered = drop_own_echo(tx_group, tx.getsockname())
    return BareSockets(tx, tx_group, group_member(group, port), echo_filtered)


async def bare_socket_round(payload: bytes, frames: int) -> Timing:
    group, port = fresh_group()
    bare = bare_sockets(group, port)
    tx, rx = bare.tx, bare.rx
    rx.settimeout(RECEIVE_TIMEOUT_S)
    bare.tx_group.setblocking(False)
    lost = 0
    watch = Stopwatch()
    for _ in range(frames // WINDOW_FRAMES):
        for _ in range(WINDOW_FRAMES):
            tx.sendto(payload, (group, port))
        for _ in range(WINDOW_FRAMES):
            try:
                rx.recvfrom(70_000)
            except TimeoutError:
                lost += 1
        if not bare.echo_filtered:
            discard_all(bare.tx_group)
    timing = watch.stop(lost)
    bare.close()
    return timing


def discard_all(sock: socket.socket) -> None:
    """Read and drop what a non-blocking socket holds (our echo, where no filter drops it)."""
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(70_000)


async def bare_asyncio_round(payload: bytes, frames: int) -> Timing:
    group, port = fresh_group()
    bare = bare_sockets(group, port)
    tx = await asyncio_dgram.from_socket(bare.tx)
    rx = await asyncio_dgram.from_socket(bare.rx)
    bare.tx_group.setblocking(False)
    lost = 0
    watch = Stopwatch()
    for _ in range(frames // WINDOW_FRAMES):
        for _ in range(WINDOW_FRAMES):
            await tx.send(payload, (group, port))  # type: ignore[call-arg]
        lost += await receive_window(rx.recv)
        if not bare.echo_filtered:
            discard_all(bare.tx_group)
    timing = watch.stop(lost)
    tx.close()
    rx.close()
    bare.tx_group.close()
    return timing


def bare_drain_round(bursts: bool) -> Round:
    """Raw payloads through the same I/O as ours: add_reader, drain, a bounded inbox."""

    async def run(payload: bytes, frames: int) -> Timing:
        group, port = fresh_group()
        bare = bare_sockets(group, port)
        for sock in (bare.tx, bare.tx_group, bare.rx):
            sock.setblocking(False)
        inbox = Inbox(100_000)

        def take(batch: list[tuple[bytes, Any]]) -> None:
            # Plain tuples, not Deliveries: a bare loop would not build a named tuple (ours
            # builds one per frame, the cheapest way it can), so this favours the bare loop.
            inbox.put_many([("x", datagram) for datagram, _ in batch])  # type: ignore[misc]

        readers = [
            SocketReader(bare.rx, take, print, 65_507),
            SocketReader(bare.tx_group, lambda batch: None, print, 65_507),  # our echo, if any
        ]
        for reader in readers:
            reader.start()
        tx, address = bare.tx, (group, port)
        lost = 0
        watch = Stopwatch()
        for _ in range(frames // WINDOW_FRAMES):
            for _ in range(WINDOW_FRAMES):
                tx.sendto(payload, address)
            if bursts:
                lost += await receive_window_in_bursts(inbox.get_many)
            else:
                lost += await receive_window(inbox.get)
        timing = watch.stop(lost)
        for reader in readers:
            reader.stop()
        bare.close()
        return timing

    return run


def paxoskv_round(secret: bytes | None, encrypt: bool, bursts: bool = False) -> Round:
    async def run(payload: bytes, frames: int) -> Timing:
        group, port = fresh_group()
        settings = TransportSettings(
            secret=secret, encrypt=encrypt, udp=UdpSettings(group=group, group_port=port)
        )
        window: list[tuple[str | None, bytes]] = [(None, payload)] * WINDOW_FRAMES
        one: list[tuple[str | None, bytes]] = [(None, payload)]
        async with (
            await UdpTransport.open("sender", settings) as sender,
            await UdpTransport.open("receiver", settings) as receiver,
        ):
            lost = 0
            watch = Stopwatch()
            for _ in range(frames // WINDOW_FRAMES):
                if bursts:
                    if (rest := sender.send_soon(window)) is not None:
                        await rest
                    lost += await receive_window_in_bursts(receiver.receive_many)
                else:
                    for _ in range(WINDOW_FRAMES):
                        if (rest := sender.send_soon(one)) is not None:
                            await rest
                    lost += await receive_window(receiver.receive)
            return watch.stop(lost)

    return run


VARIANTS: dict[str, Round] = {
    "bare socket": bare_socket_round,
    "bare asyncio-dgram": bare_asyncio_round,
    "bare asyncio drain": bare_drain_round(bursts=False),
    "bare asyncio drain, bursts": bare_drain_round(bursts=True),
    "paxos-kv": paxoskv_round(None, False),
    "paxos-kv hmac": paxoskv_round(SECRET, False),
    "paxos-kv hmac, bursts": paxoskv_round(SECRET, False, bursts=True),
    "paxos-kv aes": paxoskv_round(SECRET, True),
}


@dataclass(frozen=True, slots=True)
class Result:
    cpu_rate: float  # frames per CPU second, median of the rounds
    wall_rate: float  # frames per wall-clock second, median of the rounds
    lost: int
    page_faults_per_frame: float  # median of the rounds


async def measure(size_bytes: int, frames: int, rounds: int) -> dict[str, Result]:
    """Every variant in alternating rounds, so all see the same machine state."""
    payload = random.Random(size_bytes).randbytes(size_bytes)
    timings: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, run in VARIANTS.items():
            timings[name].append(await run(payload, frames))
    return {
        name: Result(
            statistics.median(frames / t.cpu_s for t in runs),
            statistics.median(frames / t.wall_s for t in runs),
            sum(t.lost for t in runs),
            statistics.median(t.page_faults / frames for t in runs),
        )
        for name, runs in timings.items()
    }


TARGET_RATIO = 0.6  # issue 4: paxos-kv hmac at least 60% of the bare loop's frame rate at 100 B


def bare_loop_of(name: str) -> str:
    """The bare asyncio loop a variant is held against: bursts against bursts."""
    return "bare asyncio drain, bursts" if name.endswith("bursts") else "bare asyncio drain"


def report(size_bytes: int, results: dict[str, Result]) -> None:
    bare_socket = results["bare socket"].cpu_rate
    print(f"\n### {size_bytes} B payloads\n")
    print(
        "| variant | frames/s (CPU) | MB/s (CPU) | frames/s (wall) | vs bare socket "
        "| vs bare asyncio drain | lost | page faults/frame |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        rate = result.cpu_rate
        bare_drain = results[bare_loop_of(name)].cpu_rate
        print(
            f"| {name} | {rate:,.0f} | {rate * size_bytes / 1e6:,.1f} | {result.wall_rate:,.0f} "
            f"| {rate / bare_socket:.0%} | {rate / bare_drain:.0%} | {result.lost} "
            f"| {result.page_faults_per_frame:.2f} |"
        )
    if size_bytes == 100:
        print()
        for name in ("paxos-kv hmac", "paxos-kv hmac, bursts"):
            ratio = results[name].cpu_rate / results[bare_loop_of(name)].cpu_rate
            verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
            print(
                f"Target ({TARGET_RATIO:.0%} of the bare asyncio loop at 100 B): {name} "
                f"{ratio:.0%} of {bare_loop_of(name)}: {verdict}; "
                f"{results[name].cpu_rate / bare_socket:.0%} of the blocking bare socket."
            )


def per_frame_us(make_call: Callable[[], Callable[[bytes], object]], inputs: list[bytes]) -> float:
    """CPU microseconds per call over ``inputs``, best of five passes, each with a fresh
    callable (a fresh opener, so its replay window takes every frame as new)."""
    best_s = float("inf")
    for _ in range(5):
        call = make_call()
        start_s = time.process_time()
        for item in inputs:
            call(item)
        best_s = min(best_s, time.process_time() - start_s)
    return best_s / len(inputs) * 1e6


class Socketless(FramedEndpoint):
    """The shared receive path with no sockets behind it, to time it alone."""

    def _broadcast_addresses(self) -> list[Address]:
        return []

    def _close_sockets(self) -> None:
        pass


def receive_us(codec: FrameCodec, datagrams: list[bytes]) -> float:
    """CPU microseconds per frame through the receive path (``datagrams_received``) in
    windows, as a socket's wake-up hands them over: after the first frame, every one takes
    the straight path for a header already checked; includes the delivery and the inbox."""
    source = ("127.0.0.1", 1)
    batches = [
        [(datagram, source) for datagram in datagrams[at : at + WINDOW_FRAMES]]
        for at in range(0, len(datagrams), WINDOW_FRAMES)
    ]
    best_s = float("inf")
    for _ in range(5):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
            endpoint = Socketless(
                "receiver", codec, ("127.0.0.1", 2), unused, inbox_frames=len(datagrams)
            )
            start_s = time.process_time()
            for batch in batches:
                endpoint.datagrams_received(batch)
            best_s = min(best_s, time.process_time() - start_s)
            assert endpoint.stats.received_frames == len(datagrams)
    return best_s / len(datagrams) * 1e6


def breakdown(size_bytes: int, results: dict[str, Result]) -> None:
    """Where a frame's CPU time goes: the whole path, and sealing and receiving alone."""
    payload = random.Random(size_bytes).randbytes(size_bytes)
    print(f"\nCPU us per frame at {size_bytes} B: whole path, and seal / receive alone\n")
    print(
        "| variant | whole path | over bare asyncio drain | seal | receive path "
        "| rest of our layer | open (full checks, for reference) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    drain_us = 1e6 / results["bare asyncio drain"].cpu_rate
    for name in ("bare socket", "bare asyncio drain"):
        print(f"| {name} | {1e6 / results[name].cpu_rate:.1f} | | | | | |")
    for name, secret, encrypt in (
        ("paxos-kv", None, False),
        ("paxos-kv hmac", SECRET, False),
        ("paxos-kv aes", SECRET, True),
    ):
        codec = FrameCodec("bench", secret, encrypt=encrypt)
        sealer = FrameSealer(codec, "sender", 1)
        datagrams = [sealer.seal(payload) for _ in range(10_000)]
        seal_us = per_frame_us(lambda c=codec: FrameSealer(c, "s", 1).seal, [payload] * 10_000)  # type: ignore[misc]
        open_us = per_frame_us(lambda c=codec: FrameOpener(c).unpack, datagrams)  # type: ignore[misc]
        path_us = receive_us(codec, datagrams)
        whole_us = 1e6 / results[name].cpu_rate
        over_us = whole_us - drain_us
        rest_us = over_us - seal_us - path_us
        print(
            f"| {name} | {whole_us:.1f} | {over_us:.1f} | {seal_us:.1f} | {path_us:.1f} "
            f"| {rest_us:.1f} | {open_us:.1f} |"
        )


def tag_costs() -> dict[tuple[str, int], float]:
    """CPU microseconds per HMAC-SHA256 tag (16 bytes) over a frame of 100 B and 8 KB of
    payload, by every way Python offers to compute one, after proving each gives the tag of
    ``hmac.new(key, frame, "sha256")``.

    * ``paxos-kv C pads`` -- what the transport does where the build has its C module
      (``paxoskv/transport/_hmac_sha256.c``): the pad states hashed once by OpenSSL's SHA-256,
      copied on the stack, one call a tag;
    * ``cryptography HMAC copy`` -- what the transport does without that module: copy a keyed
      OpenSSL HMAC context, update, finalize;
    * ``hashlib HMAC copy`` -- the same with the standard library's OpenSSL HMAC object;
    * ``hmac.digest`` -- one call, but OpenSSL sets the key up on every call;
    * ``builtin SHA-256 pads`` -- CPython's own SHA-256 (``_sha256``, not OpenSSL): the
      inner and outer pad states are hashed once, and each tag copies them (a struct copy,
      no OpenSSL context handling) and hashes the frame and the inner digest.
    """
    import _sha256  # CPython's builtin SHA-256: the module has no stub, hence Any below
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    key = random.Random(0).randbytes(32)
    block = key.ljust(64, b"\0")
    inner: Any = _sha256.sha256(bytes(b ^ 0x36 for b in block))
    outer: Any = _sha256.sha256(bytes(b ^ 0x5C for b in block))
    inner_copy, outer_copy = inner.copy, outer.copy

    def builtin_pads(frame: bytes) -> bytes:
        mac = inner_copy()
        mac.update(frame)
        out = outer_copy()
        out.update(mac.digest())
        return bytes(out.digest()[:16])

    keyed_copy = crypto_hmac.HMAC(key, hashes.SHA256()).copy

    def cryptography_copy(frame: bytes) -> bytes:
        mac = keyed_copy()
        mac.update(frame)
        return mac.finalize()[:16]

    hashlib_keyed = hmac.new(key, digestmod="sha256")

    def hashlib_copy(frame: bytes) -> bytes:
        mac = hashlib_keyed.copy()
        mac.update(frame)
        return mac.digest()[:16]

    def one_call(frame: bytes) -> bytes:
        return hmac.digest(key, frame, "sha256")[:16]

    ways: dict[str, Callable[[bytes], bytes]] = {}
    keyed = native_keyed()
    if keyed is not None:
        ways["paxos-kv C pads"] = keyed(key).tag
    ways |= {
        "cryptography HMAC copy": cryptography_copy,
        "hashlib HMAC copy": hashlib_copy,
        "hmac.digest": one_call,
        "builtin SHA-256 pads": builtin_pads,
    }
    costs: dict[tuple[str, int], float] = {}
    for size_bytes in (100, 8192):
        codec = FrameCodec("bench", SECRET)
        frame = FrameSealer(codec, "sender", 1).seal(bytes(size_bytes))[:-16]  # what is tagged
        for name, tag in ways.items():
            assert tag(frame) == hmac.new(key, frame, "sha256").digest()[:16], name
            calls = 20_000 if size_bytes < 1000 else 2_000
            costs[name, size_bytes] = per_frame_us(lambda t=tag: t, [frame] * calls)  # type: ignore[misc]
    return costs


def report_tag_costs(results_100: dict[str, Result] | None) -> None:
    costs = tag_costs()
    print("\nCPU us per HMAC-SHA256 tag, by way of computing it (all give the same tag)\n")
    print("| way | 100 B frame | 8 KB frame |")
    print("|---|---:|---:|")
    for name in dict.fromkeys(name for name, _ in costs):
        print(f"| {name} | {costs[name, 100]:.2f} | {costs[name, 8192]:.2f} |")
    if results_100 is not None:
        # A frame needs two tags (seal, check). Even if the rest of our layer cost nothing,
        # the best ratio to the bare loop would be bare / (bare + two tags).
        bare_us = 1e6 / results_100["bare asyncio drain"].cpu_rate
        two_tags_us = 2 * min(costs[name, 100] for name, _ in costs)
        print(
            f"\nAt 100 B: bare asyncio drain {bare_us:.1f} us a frame; two of the cheapest tags "
            f"{two_tags_us:.1f} us; so HMAC can reach at most "
            f"{bare_us / (bare_us + two_tags_us):.0%} of the bare loop if the rest of our "
            "layer were free."
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and rounds")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--breakdown", action="store_true", help="also time seal and receive alone per frame"
    )
    parser.add_argument(
        "--tag-costs", action="store_true", help="also time each way of computing an HMAC tag"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES_BYTES),
        help="payload sizes in bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        help="run only this variant, once per size, and print its timing: for counting "
        "instructions (README, Transports: callgrind at two --frames, the difference)",
    )
    args = parser.parse_args()
    if args.variant is not None:
        for size_bytes in args.sizes:
            payload = random.Random(size_bytes).randbytes(size_bytes)
            await VARIANTS[args.variant](payload, 256)  # first uses (imports, caches) go here
            timing = await VARIANTS[args.variant](payload, args.frames)
            print(f"{args.variant}, {size_bytes} B, {args.frames} frames, {build_name()}: {timing}")
        return
    frames, rounds = (2_048, 1) if args.quick else (args.frames, args.rounds)
    print(
        f"Python {sys.version.split()[0]}, {build_name()} build, {frames} frames x {rounds} "
        "rounds, loopback multicast"
    )
    results_100: dict[str, Result] | None = None
    for size_bytes in args.sizes:
        print(f"  .. {size_bytes} B", file=sys.stderr, flush=True)
        results = await measure(size_bytes, frames, rounds)
        report(size_bytes, results)
        if size_bytes == 100:
            results_100 = results
        if args.breakdown:
            breakdown(size_bytes, results)
    if args.tag_costs:
        report_tag_costs(results_100)


if __name__ == "__main__":
    asyncio.run(main())
