"""What the comparison's parent and its node processes say to each other, and the workload.

Both systems run as three long-lived node processes that take JSON commands on stdin and
answer with one JSON line each on stdout. Keeping the processes alive across phases (every
value size, then the latency run) saves each cluster's start-up per phase and keeps the
budget of the whole comparison; the same protocol for both systems means the parent drives
PySyncObj and paxos-kv with the very same code, so neither gets a different workload.

Replies carry a prefix because both systems (and their loggers) may print other lines.

Commands (``op``) and their replies:

* ``status``: ``{"leader": bool}``.
* ``pipeline`` (value_bytes, seconds, window, start_at, seed): clients keep ``window`` writes
  outstanding to random keys from ``start_at`` for ``seconds``; replies, as the window
  closes, ``writes`` confirmed and ``errors`` within it, ``error_kinds`` and ``cpu_s`` (this
  process, within the window). Writes still in flight are abandoned with the cluster.
* ``latency`` (value_bytes, max_writes, seconds): one client, one write at a time; replies
  ``latency_ms`` (sorted) and ``errors``.
* ``fill`` (count, window, value_bytes, seed, seconds_max): pipelined writes until ``count``
  are confirmed or time is up; replies ``writes``, ``errors``, ``wall_s``.
* ``put`` (key, value): one confirmed write; replies ``ok``.
* ``await`` (key, value, limit_s): until this node's own copy holds ``value`` under ``key``;
  replies ``ok`` and ``waited_s``.
* ``quit``: the process stops its node and exits.

A node started with ``--recover-key``/``--recover-value`` first polls its own copy for that
key and reports ``{"op": "recovered", "read_at": <time.time()>, "ready_at": ...}`` before
taking commands: the parent subtracts the moment it spawned the process.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

REPLY_PREFIX = "@@compare "
KEY_SPACE = 100_000  # random keys are drawn from k0 .. k99999, the same for both systems
LAST_KEY = "compare-last-written"


def key_for(index: int) -> str:
    return f"k{index}"


def value_of(size_bytes: int) -> str:
    """A str value of ``size_bytes`` ASCII characters (both systems store it as given)."""
    return "x" * size_bytes


def minor_faults() -> int:
    """Minor page faults of this process and the children it has waited for: fresh memory
    touched for the first time, a kernel entry each (a few µs on a VM)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


def resident_bytes() -> int:
    """This process's resident memory now (``VmRSS``), or 0 where ``/proc`` does not say.

    The parent reports the largest of a system's three processes at a phase's close: what a
    node holds, its map, what it keeps for peers, and what its allocator has not handed back.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_s() -> float:
    """CPU time of this process, all threads, plus children it has waited for.

    PySyncObj forks to write its full dump; counting reaped children keeps that work in its
    figures rather than hiding it in another process.
    """
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def reply(**fields: Any) -> None:
    sys.stdout.write(REPLY_PREFIX + json.dumps(fields) + "\n")
    sys.stdout.flush()


def parse_reply(line: str) -> dict[str, Any] | None:
    """The reply on a line of a node's stdout, or None for any other line."""
    if not line.startswith(REPLY_PREFIX):
        return None
    parsed = json.loads(line[len(REPLY_PREFIX) :])
    return parsed if isinstance(parsed, dict) else None


def next_command() -> dict[str, Any] | None:
    """The parent's next command; None at ``quit`` or a closed stdin (the parent is gone)."""
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        if line.strip():
            break
    command = json.loads(line)
    if not isinstance(command, dict) or command.get("op") == "quit":
        return None
    return command


def client_seed(seed: int, process_index: int, client_index: int) -> int:
    """Every client of every process draws its own reproducible key sequence."""
    return seed * 1_000_003 + process_index * 10_007 + client_index
