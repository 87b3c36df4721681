"""The README's command-line tutorial, run as a reader runs it: against ``local-cluster``.

A review that followed it by hand found three commands that failed as written (a
compare-and-set at a revision only a fresh cluster without a learner has, a watch waiting for
a change that never came, a read of a key deleted just before). Here every line of that block
runs in one shell, in order, with the flags ``local-cluster`` printed as ``$C``; a line that
runs "until Ctrl-C" runs for a bounded while instead.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import pid_alive
from tests.cli.test_local_cluster import Foreground

README = Path(__file__).resolve().parents[2] / "README.md"
LINE_TIMEOUT_S = 30
UNTIL_CTRL_C_S = 2  # how long a line that runs until Ctrl-C runs here


def _tutorial_lines() -> list[str]:
    text = README.read_text()
    tutorial = text[text.index("## Tutorial: the command line") :]
    blocks = re.findall(r"```sh\n(.*?)```", tutorial, re.DOTALL)
    return [line for line in blocks[1].splitlines() if line.strip()]  # [0]: make demo, ...


def _as_script(lines: list[str]) -> str:
    """One shell script: each line bounded, stopped at the first that fails."""
    steps = ["set -u"]
    for number, line in enumerate(lines, 1):
        command = line.split("  #")[0].strip()
        comment = line.partition("  #")[2]
        if "until Ctrl-C" in comment:  # bounded: one SIGINT after a while, as Ctrl-C sends
            # (--foreground: to the command alone; plain timeout signals its whole group too,
            # and a second SIGINT in the watch's clean stop is a second Ctrl-C: exit 130)
            bounded = f"timeout --foreground --preserve-status -s INT {UNTIL_CTRL_C_S} {command}"
        elif command.startswith("R=$("):
            inner = command.removeprefix("R=$(").removesuffix(")")
            bounded = f"R=$(timeout {LINE_TIMEOUT_S} {inner})"
        else:
            bounded = f"timeout {LINE_TIMEOUT_S} {command}"
        steps.append(f"echo {shlex.quote(f'== {number}: {command}')}")  # quoted: never run
        steps.append(f'{bounded} || {{ echo "line {number} exited $?"; exit 1; }}')
    return "\n".join(steps) + "\n"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Foreground]:
    running = Foreground(tmp_path, "--nodes", "3", "--learners", "1")
    try:
        yield running
    finally:
        running.close()
        for pid in running.node_pids():  # never leave a node behind, whatever the test did
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_tutorial_block_runs_as_written(tmp_path: Path, cluster: Foreground) -> None:
    cluster.wait_ready()
    flags = " ".join(cluster.printed_command("get")[2:])  # get greeting FLAGS...
    lines = _tutorial_lines()
    assert len(lines) >= 10 and all("paxos-kv " in line for line in lines), lines
    script = tmp_path / "tutorial.sh"
    script.write_text(_as_script(lines))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PAXOS_KV_")}
    environment["C"] = flags
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    done = subprocess.run(
        ["bash", str(script)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=LINE_TIMEOUT_S * len(lines),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout
    assert re.search(r"^\d+ set greeting hi$", said, re.MULTILINE), said  # the watch's 5th
    assert "promoted l1" in said and "removed l1" in said
    assert said.rstrip().endswith('{"n":1}')  # n2's own copy of counter
