"""``python -m simulations run --seeds N``: many seeds, a summary, and a replay line per failure."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from simulations.run import EXTRA_FAULT_KINDS, FAULT_KINDS, RunOptions, RunResult, run_seed


def _faults(text: str) -> frozenset[str]:
    if text == "all":
        return frozenset(FAULT_KINDS)
    if text == "none":
        return frozenset()
    kinds = frozenset(part.strip() for part in text.split(",") if part.strip())
    known = FAULT_KINDS + EXTRA_FAULT_KINDS
    unknown = kinds - set(known)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {sorted(unknown)}; choose from {', '.join(known)}"
        )
    return kinds


def replay_command(seed: int, options: RunOptions) -> str:
    """The one command that runs ``seed`` again as ``options`` ran it, with a trace."""
    faults = ",".join(sorted(options.faults)) or "none"
    return (
        f"python -m simulations run --seed {seed} --nodes {options.nodes} --faults {faults}"
        + (f" --leader-reads {options.leader_reads}" if options.leader_reads else "")
        + (f" --clock-drift {options.clock_drift}" if options.clock_drift else "")
        + " --trace"
    )


def _one(job: tuple[int, RunOptions]) -> RunResult:
    return run_seed(job[0], job[1])


def _results(
    seeds: Sequence[int], options: RunOptions, trace: Callable[[str], None] | None, jobs: int
) -> Iterator[tuple[int, RunResult]]:
    if jobs == 1:
        for seed in seeds:
            yield seed, run_seed(seed, options, trace)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        work = [(seed, options) for seed in seeds]
        yield from zip(seeds, pool.map(_one, work, chunksize=4), strict=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulations")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run seeds and check every invariant")
    run.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    run.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    run.add_argument("--seed", type=int, help="run this one seed only")
    run.add_argument("--nodes", type=int, default=5, help="voters (default 5)")
    run.add_argument(
        "--faults",
        type=_faults,
        default=frozenset(FAULT_KINDS),
        help=f"all ({', '.join(FAULT_KINDS)}), none, or a comma list of those and "
        f"{', '.join(EXTRA_FAULT_KINDS)}",
    )
    run.add_argument(
        "--leader-reads",
        type=float,
        default=0.0,
        help="the share of gets made as lease ('leader') reads, 0 to 1 (default 0)",
    )
    run.add_argument(
        "--clock-drift",
        type=float,
        default=0.0,
        help="each node's clock runs at 1 ± this, from 0 to 0.5 (default 0); the lease "
        "rule allows for 0.05 (EngineSettings.clock_drift_bound, between any two clocks)",
    )
    run.add_argument("--trace", action="store_true", help="print every event of the run")
    run.add_argument("--jobs", type=int, default=1, help="processes to run seeds in (default 1)")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if not 0.0 <= args.leader_reads <= 1.0:
        parser.error("--leader-reads must be between 0 and 1")
    if not 0.0 <= args.clock_drift <= 0.5:
        parser.error("--clock-drift must be between 0 and 0.5")
    options = RunOptions(
        nodes=args.nodes,
        faults=args.faults,
        leader_reads=args.leader_reads,
        clock_drift=args.clock_drift,
    )
    seeds = (
        [args.seed]
        if args.seed is not None
        else range(args.first_seed, args.first_seed + args.seeds)
    )
    trace = print if args.trace else None
    if args.jobs < 1 or (args.jobs > 1 and args.trace):
        parser.error("--jobs must be at least 1, and 1 with --trace")
    failures = 0
    started = time.monotonic()
    operations = 0
    for seed, result in _results(seeds, options, trace, args.jobs):
        operations += result.operations
        if not result.ok:
            failures += 1
            print(f"seed {seed} FAILED at {result.virtual_s:.2f}s virtual: {result.failure}")
            print(f"  replay: {replay_command(seed, options)}")
    elapsed = time.monotonic() - started
    print(
        f"{len(seeds) - failures} passed, {failures} failed: {len(seeds)} seeds, "
        f"{operations} client operations checked, {elapsed:.1f}s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
