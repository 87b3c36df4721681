"""One store's durable write latency: ``append`` of one 100-byte record + ``sync``, timed.

The figure preallocation (writer.py) is about: each sync is one write + fdatasync, and it
commits no change of size when the write lands over zeros already written. Run it from the
tree to measure, e.g. ``PYTHONPATH=. python benchmarks/store_sync_latency.py --dir DIR``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from paxoskv.storage import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where (default: a temp dir)")
    parser.add_argument("--writes", type=int, default=5000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(dir=args.dir, prefix="store-sync-"))
    record = b"v" * 100
    try:
        with Store.open(directory) as store:
            times = []
            for _ in range(args.writes):
                start = time.perf_counter()
                store.append([record])
                store.sync()
                times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(directory)
    times.sort()
    n = len(times)
    figures = {p: times[min(n - 1, int(n * p / 100))] * 1e6 for p in (50, 90, 99, 99.9)}
    print(
        f"{n} writes: "
        + ", ".join(f"p{p:g} {us:,.0f} us" for p, us in figures.items())
        + f", mean {sum(times) / n * 1e6:,.0f} us"
    )


if __name__ == "__main__":
    main()
