"""One PySyncObj node process of the comparison: a ``ReplDict`` and the clients it embeds.

PySyncObj runs with its own defaults (``SyncObjConf()``: batching on, journal in memory, no
fsync), as a user who installs it gets it. Two switches exist only because the comparison
asks them: ``--no-batching`` (``appendEntriesUseBatch=False``, its low-latency setting) for
the latency run, and ``--persist`` (``journalFile`` and ``fullDumpFile``, still without
fsync) for the recovery run, since without files there is nothing to recover from.

PySyncObj's API is threaded: writes are queued for its tick thread and confirmed through a
callback from that thread; a semaphore keeps ``window`` writes outstanding, as the paxos-kv
process keeps ``window`` client coroutines busy.

    python -m benchmarks.compare_pysyncobj --index 1 --self 127.0.0.1:P --partners A,B
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf  # type: ignore[import-untyped]
from pysyncobj.batteries import ReplDict  # type: ignore[import-untyped]

from benchmarks.compare_protocol import (
    KEY_SPACE,
    client_seed,
    cpu_s,
    key_for,
    minor_faults,
    next_command,
    reply,
    resident_bytes,
    value_of,
)

POLL_INTERVAL_S = 0.001
REASONS = {
    code: name for name, code in vars(FAIL_REASON).items() if name.isupper() and code != 0
}  # FAIL_REASON's numbers by name, so that the table says why a write failed
REQUEST_TIMEOUT_S = 10.0


class Node:
    """The replicated dict and its SyncObj, one per process."""

    def __init__(self, args: argparse.Namespace) -> None:
        options: dict[str, Any] = {}
        if not args.batching:
            options["appendEntriesUseBatch"] = False
        if args.persist:
            data_dir = Path(args.data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            options["journalFile"] = str(data_dir / "journal.bin")
            options["fullDumpFile"] = str(data_dir / "dump.bin")
        self.store = ReplDict()
        self.sync = SyncObj(args.self_address, args.partners, SyncObjConf(**options), [self.store])

    def close(self) -> None:
        self.sync.destroy()


class Window:
    """Counts confirmations and keeps at most ``size`` writes outstanding.

    Callbacks arrive on PySyncObj's tick thread (or at once on the caller's thread when its
    queue is full), hence the lock.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = threading.Semaphore(size)
        self.lock = threading.Lock()
        self.writes = 0
        self.errors = 0
        self.error_kinds: Counter[str] = Counter()
        self.issued = 0

    def done(self, result: Any, error: int) -> None:
        with self.lock:
            if error == FAIL_REASON.SUCCESS:
                self.writes += 1
            else:
                self.errors += 1
                self.error_kinds[REASONS.get(error, str(error))] += 1
        self.free.release()

    def in_flight(self) -> int:
        with self.lock:
            return self.issued - self.writes - self.errors

    def drain(self, timeout_s: float) -> None:
        """Until every outstanding write has been answered (or the bound is reached)."""
        deadline = time.monotonic() + timeout_s
        taken = 0
        while taken < self.size and self.free.acquire(
            timeout=max(0.0, deadline - time.monotonic())
        ):
            taken += 1


def _issue(node: Node, window: Window, rng: random.Random, value: str) -> None:
    with window.lock:
        window.issued += 1
    node.store.set(key_for(rng.randrange(KEY_SPACE)), value, callback=window.done)


def status(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    return {"leader": bool(node.sync._isLeader())}


def pipeline(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """As paxos-kv's: figures taken when the window closes, writes in flight abandoned."""
    value = value_of(int(command["value_bytes"]))
    start_at = float(command["start_at"])
    stop_at = start_at + float(command["seconds"])
    rng = random.Random(client_seed(int(command["seed"]), index, 0))
    window = Window(int(command["window"]))
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before, faults_before = cpu_s(), minor_faults()
    while (left_s := stop_at - time.time()) > 0:
        if window.free.acquire(timeout=min(0.05, left_s)):
            _issue(node, window, rng, value)
    with window.lock:
        return {
            "writes": window.writes,
            "errors": window.errors,
            "cpu_s": cpu_s() - cpu_before,
            "minor_faults": minor_faults() - faults_before,
            "resident_bytes": resident_bytes(),
            "error_kinds": dict(window.error_kinds),
        }


def latency(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    value = value_of(int(command["value_bytes"]))
    stop_at = time.monotonic() + float(command["seconds"])
    samples_ms: list[float] = []
    errors = 0
    for i in range(int(command["max_writes"])):
        if time.monotonic() >= stop_at:
            break
        started = time.perf_counter()
        try:
            node.store.set(f"lat{i % 100}", value, sync=True, timeout=REQUEST_TIMEOUT_S)
        except Exception:  # SyncObjException: a timeout or a refusal, counted not raised
            errors += 1
            continue
        samples_ms.append((time.perf_counter() - started) * 1000)
    return {"latency_ms": sorted(samples_ms), "errors": errors}


def fill(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    count = int(command["count"])
    value = value_of(int(command["value_bytes"]))
    rng = random.Random(client_seed(int(command["seed"]), index, 0))
    window = Window(int(command["window"]))
    started = time.monotonic()
    deadline = started + float(command["seconds_max"])
    while time.monotonic() < deadline:
        if window.writes + window.in_flight() >= count:
            if window.in_flight() == 0:
                break
            time.sleep(POLL_INTERVAL_S)  # the last writes are in flight; errors reissue
            continue
        if window.free.acquire(timeout=0.05):
            _issue(node, window, rng, value)
    window.drain(REQUEST_TIMEOUT_S)
    wall_s = time.monotonic() - started
    return {"writes": window.writes, "errors": window.errors, "wall_s": wall_s}


def reads(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    """Random keys read from the process's own copy, one after another, for ``seconds``.

    ``ReplDict.get`` reads the local dict without asking the leader (PySyncObj has no
    confirmed read), and returns at once, so one thread is its whole window.
    """
    if command["consistency"] != "local":
        raise ValueError("PySyncObj reads only its own copy (consistency 'local')")
    start_at = float(command["start_at"])
    stop_at = start_at + float(command["seconds"])
    rng = random.Random(client_seed(int(command["seed"]), index, 0))
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = cpu_s()
    store = node.store
    count = found = 0
    while time.time() < stop_at:
        for _ in range(1000):
            found += store.get(key_for(rng.randrange(KEY_SPACE))) is not None
        count += 1000
    return {"reads": count, "errors": 0, "found": found, "cpu_s": cpu_s() - cpu_before}


def read_latency(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    if command["consistency"] != "local":
        raise ValueError("PySyncObj reads only its own copy (consistency 'local')")
    stop_at = time.monotonic() + float(command["seconds"])
    rng = random.Random(client_seed(int(command["seed"]), index, 0))
    samples_ms: list[float] = []
    cpu_before = cpu_s()
    for _ in range(int(command["max_reads"])):
        if time.monotonic() >= stop_at:
            break
        key = key_for(rng.randrange(KEY_SPACE))
        started = time.perf_counter()
        node.store.get(key)
        samples_ms.append((time.perf_counter() - started) * 1000)
    return {"latency_ms": sorted(samples_ms), "errors": 0, "cpu_s": cpu_s() - cpu_before}


def put(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    node.store.set(str(command["key"]), command["value"], sync=True, timeout=30.0)
    return {"ok": True}


def await_value(node: Node, command: dict[str, Any], index: int) -> dict[str, Any]:
    started = time.monotonic()
    ok = _until_local(node, str(command["key"]), command["value"], float(command["limit_s"]))
    return {"ok": ok, "waited_s": time.monotonic() - started}


def _until_local(node: Node, key: str, value: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.store.get(key) == value:
            return True
        time.sleep(POLL_INTERVAL_S)
    return False


def _until_ready(node: Node, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.sync.isReady():
            return True
        time.sleep(POLL_INTERVAL_S)
    return False


HANDLERS: dict[str, Callable[[Node, dict[str, Any], int], dict[str, Any]]] = {
    "status": status,
    "pipeline": pipeline,
    "latency": latency,
    "fill": fill,
    "put": put,
    "await": await_value,
    "reads": reads,
    "read_latency": read_latency,
}


def report_recovery(node: Node, key: str, value: str, args: argparse.Namespace) -> None:
    """Serving again: the own copy has the last write, then PySyncObj calls itself ready
    (caught up with the leader's commit index), its nearest to a confirmed read."""
    if not _until_local(node, key, value, args.timeout_s):
        reply(op="recovered", ok=False, imported_at=args.imported_at)
        return
    read_at = time.time()
    ready = _until_ready(node, args.timeout_s)
    reply(
        op="recovered",
        ok=ready,
        read_at=read_at,
        ready_at=time.time(),
        imported_at=args.imported_at,
    )


def serve(args: argparse.Namespace) -> None:
    node = Node(args)
    try:
        if args.recover_key is not None:
            report_recovery(node, args.recover_key, args.recover_value, args)
        while (command := next_command()) is not None:
            reply(**HANDLERS[str(command["op"])](node, command, args.index))
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--self", dest="self_address", required=True)
    parser.add_argument("--partners", type=lambda text: text.split(","), required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--no-batching", dest="batching", action="store_false")
    parser.add_argument("--persist", action="store_true")
    parser.add_argument("--recover-key")
    parser.add_argument("--recover-value")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.set_defaults(imported_at=time.time())  # interpreter start-up and imports are done
    # Warnings go to stderr, which the parent keeps as this node's log (--work-dir keeps it).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
