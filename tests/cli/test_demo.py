"""``make demo`` is the README's run command: it must work, end to end, and clean up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import clean_environment, pid_alive

DEMO = Path(__file__).resolve().parents[2] / "demo" / "demo.py"


def test_the_demo_runs_and_leaves_nothing_behind() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # The story the README tells: the leader dies, writes go on, the node comes back current.
    assert re.search(r"^\$ kill -9 \d+$", out, re.MULTILINE)
    assert "$ paxos-kv set user/3 Barbara --timeout 15\n" in out
    assert re.search(r"get user/4 --node n\d --consistency local\nEdsger\n", out)
    watch_lines = re.findall(r"^\d+ (?:set|delete) user/.*$", out, re.MULTILINE)
    assert [line.split(" ", 1)[1] for line in watch_lines] == [
        "set user/3 Barbara",
        "delete user/1",
        "set user/4 Edsger",
    ]
    temporary = Path(re.findall(r"--data-dir (\S+)/n1 ", out)[0])
    assert not temporary.exists()
    assert processes_mentioning(str(temporary)) == []


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (a node of the demo's cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in command and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found
