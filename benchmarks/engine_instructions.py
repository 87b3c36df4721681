"""Instructions per command through ``engine.py``'s cluster, counted by callgrind.

Wall-clock figures on a shared 2-core VM swing by a factor of five from run to run;
instruction counts do not. This runs ``engine.py``'s ``measure`` under ``valgrind
--tool=callgrind`` twice, with a small and a large number of commands and everything else the
same (``PYTHONHASHSEED=0``), and divides the difference in instructions by the difference in
commands: the cost of one command with start-up, imports, the election, the clients' encoding
of their commands (both runs encode as many) and the teardown at exit (the child leaves by
``os._exit``) left out. Both runs are past the first 10,000 commands, which create the
benchmark's keys, so the difference is the steady state the benchmark spends nearly all its
time in: every Set overwrites a key, and the watch history and dedup table are full. (At batch
1 the defaults, 300 and 900, are kept small for callgrind's sake, so there every Set creates
its key.) The collector runs with a node's threshold, as in ``engine.py``.

    python benchmarks/engine_instructions.py [--batch 100] [--small 15000] [--large 30000]

Needs valgrind. Takes some minutes at batch 100 (callgrind runs Python some 50 times slower).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CHILD = (
    "import sys; sys.path.insert(0, {here!r}); import engine; "
    "engine.node_collector().__enter__(); "
    "encoded = engine.encoded_sets({encode}, {value_bytes}); "
    "engine.measure({commands}, {batch}, {value_bytes}, encoded); "
    "import os; os._exit(0)"
)


def instructions(commands: int, encode: int, batch: int, value_bytes: int) -> int:
    """Instructions callgrind counts for a whole process that encodes ``encode`` commands
    (the clients' side, the same in both runs) and runs the first ``commands`` of them."""
    code = _CHILD.format(
        here=str(_HERE), commands=commands, encode=encode, batch=batch, value_bytes=value_bytes
    )
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
        ],
        env=env,
        cwd=_HERE.parent,  # ``python -c`` imports from its directory first: this checkout's code
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--small", type=int, help="commands in the first run (15000; batch 1: 300)")
    parser.add_argument("--large", type=int, help="commands in the second (30000; batch 1: 900)")
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args()
    small = args.small or (15_000 if args.batch > 1 else 300)
    large = args.large or (30_000 if args.batch > 1 else 900)
    counts = [instructions(n, large, args.batch, args.value_bytes) for n in (small, large)]
    per_command = (counts[1] - counts[0]) / (large - small)
    print(f"batch {args.batch:>4}: {per_command:>10,.0f} instructions per command")
    return 0


if __name__ == "__main__":
    sys.exit(main())
