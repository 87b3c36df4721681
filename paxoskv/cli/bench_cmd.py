"""The ``bench`` command: run the comparison harness, ``benchmarks/compare.py``.

The harness lives beside the package in a source checkout rather than inside it, because it
drives PySyncObj, which must never become a dependency of the store; the command therefore
runs it as a separate process with this interpreter, and says so plainly when it is not there
(an installed wheel ships the store, not its benchmarks).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import click

from paxoskv.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE

HARNESS = Path("benchmarks") / "compare.py"
CLEANUP_TIMEOUT_S = 30.0  # the harness stops its node processes before it exits


class HarnessMissing(click.ClickException):
    """No ``benchmarks/compare.py`` here: an installed wheel, not a source checkout."""

    exit_code = EXIT_FAILED


class PySyncObjMissing(click.ClickException):
    """``--compare`` without the bench extra: retrying the same command cannot help."""

    exit_code = EXIT_USAGE


def harness_path() -> Path:
    """``benchmarks/compare.py`` of the checkout this package runs from, or of the cwd."""
    package_root = Path(__file__).resolve().parents[2]
    for base in (package_root, Path.cwd()):
        if (base / HARNESS).is_file():
            return base / HARNESS
    raise HarnessMissing(
        f"{HARNESS} was not found: the benchmarks come with a source checkout of paxos-kv; "
        "run this command from one (pip install -e '.[bench]')"
    )


def harness_argv(script: Path, compare: bool, quick: bool, out_dir: Path | None) -> list[str]:
    argv = [sys.executable, str(script), "--systems", "paxoskv,pysyncobj" if compare else "paxoskv"]
    if quick:
        argv.append("--quick")
    if out_dir is not None:
        argv += ["--out-dir", str(out_dir)]
    return argv


def run_harness(argv: list[str]) -> int:
    """Run it in the foreground; on Ctrl-C let it stop its nodes rather than orphan them."""
    process = subprocess.Popen(argv)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            process.wait(timeout=CLEANUP_TIMEOUT_S)  # it got the same SIGINT and cleans up
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return EXIT_INTERRUPTED


@click.command("bench", short_help="Measure writes/s, latency and recovery on loopback.")
@click.option(
    "--compare",
    is_flag=True,
    help="Run PySyncObj side by side on the same workloads (pip install 'paxos-kv[bench]').",
)
@click.option("--quick", is_flag=True, help="A smaller run, under 2 minutes (full: under 10).")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where compare.json and the plots go [default: benchmarks/results].",
)
def bench_command(compare: bool, quick: bool, out_dir: Path | None) -> None:
    """Three paxos-kv processes on 127.0.0.1, in durable and os mode: pipelined committed
    writes/s at 10 B to 8 KB values, one client's write latency, and a follower's recovery
    time. Prints a table, writes JSON and (with matplotlib) plots."""
    script = harness_path()
    if compare and importlib.util.find_spec("pysyncobj") is None:
        raise PySyncObjMissing(
            "--compare needs PySyncObj, a benchmark-only extra: pip install 'paxos-kv[bench]'"
        )
    code = run_harness(harness_argv(script, compare, quick, out_dir))
    if code:
        raise click.exceptions.Exit(code)
