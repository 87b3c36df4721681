"""The two pictures README.md shows: writes/s by value size, and the latency distribution.

matplotlib is an optional extra (``pip install paxos-kv[bench]``); without it the comparison
still prints and saves its figures and says the plots were skipped.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.compare_report import LABELS, Results, setups_in, size_label

COLOURS = {
    "pysyncobj": "#9e9e9e",
    "pysyncobj-nobatch": "#616161",
    "pysyncobj-files": "#bdbdbd",
    "paxoskv-durable": "#1565c0",
    "paxoskv-os": "#64b5f6",
}


def draw(results: Results, out_dir: Path) -> tuple[list[Path], str | None]:
    """The plot files written, or none and the reason."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a server or in CI
    except ImportError:
        return [], "matplotlib is not installed (pip install 'paxos-kv[bench]'): no plots"
    written = []
    if results.throughput:
        written.append(_throughput_plot(results, out_dir / "compare_throughput.png"))
    if results.latency:
        written.append(_latency_plot(results, out_dir / "compare_latency.png"))
    return written, None


def _throughput_plot(results: Results, path: Path) -> Path:
    import matplotlib.pyplot as pyplot

    setups = setups_in(results.throughput)
    sizes = sorted({t.value_bytes for t in results.throughput})
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(setups))
    for offset, setup in enumerate(setups):
        heights = []
        for size in sizes:
            entry = results.throughput_of(setup, size)
            heights.append(entry.writes_per_s if entry else 0.0)
        positions = [i + (offset - (len(setups) - 1) / 2) * width for i in range(len(sizes))]
        axes.bar(positions, heights, width, label=LABELS[setup], color=COLOURS[setup])
    axes.set_xticks(range(len(sizes)), [size_label(size) for size in sizes])
    axes.set_xlabel("value size")
    axes.set_ylabel("committed writes/s (3 processes)")
    axes.set_yscale("log")
    axes.set_title("Pipelined committed writes/s, 3 nodes on one 2-core machine")
    axes.legend()
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def _latency_plot(results: Results, path: Path) -> Path:
    import matplotlib.pyplot as pyplot

    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for setup in setups_in(results.latency):
        entry = results.latency_of(setup)
        if entry is None or not entry.samples_ms:
            continue
        count = len(entry.samples_ms)
        fractions = [(i + 1) / count for i in range(count)]
        axes.step(
            entry.samples_ms, fractions, where="post", label=LABELS[setup], color=COLOURS[setup]
        )
    axes.set_xscale("log")
    axes.set_xlabel("write latency, ms (log scale)")
    axes.set_ylabel("fraction of writes")
    axes.set_title("One client's sequential writes: latency distribution")
    axes.legend(loc="lower right")
    axes.grid(which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
