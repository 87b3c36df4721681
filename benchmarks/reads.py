"""Reads: reads/s and one reader's latency at each consistency, three processes on loopback.

A store shared by web servers is read far more than it is written, and what a read costs
depends on what it promises (README, Guarantees): ``local`` reads the process's own copy,
``leader`` asks the leader, which answers under its lease, ``linearizable`` has the leader
confirm its leadership with a quorum round first (read-index, batched across the reads
waiting at once); ``get_local`` is ``Node.get_local``, the same read of the own copy without an
await. The same three processes as ``compare.py`` (``benchmarks/compare_cluster``,
durable mode) are filled with ``--keys`` writes of 100 B to random keys, then:

* pipelined: every process keeps ``--window`` reads outstanding to random keys for
  ``--seconds``, at each consistency in turn; counted are reads answered, and the CPU the
  three processes spent on them;
* one reader, one read at a time, from the leader's process and from a follower's, at each
  consistency: p50/p99 latency (a follower's ``leader`` and ``linearizable`` reads take a
  round trip to the leader that the leader's own do not).

PySyncObj runs beside it for ``local`` reads only: ``ReplDict.get`` reads the local dict and
PySyncObj has no read that a quorum confirms. Its reads are synchronous, so one thread per
process is its whole window.

    python benchmarks/reads.py [--seconds 3] [--systems paxoskv,pysyncobj] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare_cluster import SETUPS, Cluster
from benchmarks.compare_report import percentile

CONSISTENCIES = ("get_local", "local", "leader", "linearizable")  # get_local: Node.get_local
ANSWER_MARGIN_S = 30.0  # beyond a phase's own length, before a silent process is a failure
VALUE_BYTES = 100


def run_system(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    setup = SETUPS[name]
    consistencies = CONSISTENCIES if setup.system == "paxoskv" else ("local",)
    result: dict[str, Any] = {"setup": name, "pipelined": [], "sequential": []}
    with Cluster(setup, root / name) as cluster:
        leader = cluster.wait_leader()
        follower = next(index for index in cluster.nodes if index != leader)
        fill = {"window": 256, "value_bytes": VALUE_BYTES, "seed": args.seed, "seconds_max": 120}
        share = args.keys // len(cluster.nodes)
        cluster.ask_each("fill", 150, [{**fill, "count": share}] * len(cluster.nodes))
        for consistency in consistencies:
            start_at = time.time() + 0.5
            answers = cluster.ask_all(
                "reads",
                args.seconds + ANSWER_MARGIN_S,
                consistency=consistency,
                window=args.window,
                seconds=args.seconds,
                start_at=start_at,
                seed=args.seed,
            )
            reads = sum(int(a["reads"]) for a in answers)
            cpu = sum(float(a["cpu_s"]) for a in answers)
            entry = {
                "consistency": consistency,
                "reads_per_s": reads / args.seconds,
                "errors": sum(int(a["errors"]) for a in answers),
                "found": sum(int(a["found"]) for a in answers) / max(1, reads),
                "cpu_us_per_read": cpu / max(1, reads) * 1e6,
            }
            result["pipelined"].append(entry)
            print(f"  {name} pipelined {consistency}: {entry['reads_per_s']:,.0f} reads/s")
        for where, index in (("leader", leader), ("follower", follower)):
            for consistency in consistencies:
                answer = cluster.ask(
                    index,
                    "read_latency",
                    args.latency_seconds + ANSWER_MARGIN_S,
                    consistency=consistency,
                    seconds=args.latency_seconds,
                    max_reads=args.latency_reads,
                    seed=args.seed,
                )
                samples = answer["latency_ms"]
                entry = {
                    "process": where,
                    "consistency": consistency,
                    "reads": len(samples),
                    "errors": answer["errors"],
                    "p50_ms": percentile(samples, 0.5),
                    "p99_ms": percentile(samples, 0.99),
                    "mean_ms": statistics.fmean(samples) if samples else None,
                    "cpu_us_per_read": float(answer["cpu_s"]) / max(1, len(samples)) * 1e6,
                }
                result["sequential"].append(entry)
                print(f"  {name} one reader on the {where}, {consistency}: p50 {entry['p50_ms']}")
    return result


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "Pipelined reads, all three processes at once (reads/s; CPU of the three a read)",
        f"{'setup':20s} {'consistency':13s} {'reads/s':>10s} {'µs CPU':>8s} {'errors':>7s}",
    ]
    for result in results:
        for e in result["pipelined"]:
            lines.append(
                f"{result['setup']:20s} {e['consistency']:13s} {e['reads_per_s']:10,.0f} "
                f"{e['cpu_us_per_read']:8.1f} {e['errors']:7d}"
            )
    lines += [
        "",
        "One reader, one read at a time (ms; CPU of the reader's process a read)",
        f"{'setup':20s} {'process':9s} {'consistency':13s} {'p50':>8s} {'p99':>8s} {'µs CPU':>8s}",
    ]
    for result in results:
        for e in result["sequential"]:
            p50, p99 = (
                f"{v:8.3f}" if v is not None else f"{'-':>8s}" for v in (e["p50_ms"], e["p99_ms"])
            )
            lines.append(
                f"{result['setup']:20s} {e['process']:9s} {e['consistency']:13s} {p50} {p99} "
                f"{e['cpu_us_per_read']:8.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="paxoskv,pysyncobj")
    parser.add_argument("--keys", type=int, default=150_000, help="writes of the fill")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=128, help="reads outstanding a process")
    parser.add_argument("--latency-seconds", type=float, default=2.0)
    parser.add_argument("--latency-reads", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    names = {"paxoskv": "paxoskv-durable", "pysyncobj": "pysyncobj"}
    systems = [names[s] for s in args.systems.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="paxoskv-reads-") as scratch:
        results = [run_system(name, args, Path(scratch)) for name in systems]
    print(report(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
