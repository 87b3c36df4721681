"""The README's Python examples run as written and end by themselves.

Both once waited for good: the first ended in a watch loop nothing ever left, and the blocking
one watched from after its own write, so its loop waited for a change that never came. Each
runs here as a script of its own, in a process bounded in time, on loopback under a cluster
name and multicast port of its own (a prelude points ``paxoskv.Config`` at them, since the
examples name the defaults a reader would use).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import clean_environment, stop_process, wait_for_text
from tests.runtime.cluster import unique_cluster_name

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_TIMEOUT_S = 60.0


def _python_examples() -> list[str]:
    text = README.read_text()
    tutorial = text[text.index("## Tutorial: the Python API") :]
    tutorial = tutorial[: tutorial.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", tutorial, re.DOTALL)


def _prelude(cluster: str, group: str) -> str:
    return (
        "import paxoskv\n"
        "_Config = paxoskv.Config\n"
        "def _own(**settings):\n"
        f"    return _Config(**{{**settings, 'cluster': {cluster!r}, 'group': {group!r}}})\n"
        "paxoskv.Config = _own\n"
    )


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = cwd / "example.py"
    path.write_text(script)
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        env=clean_environment(),
    )


def _own_group() -> str:
    return f"239.255.74.77:{random.randint(20_000, 60_000)}"


def test_the_tutorials_examples_are_both_there() -> None:
    assert len(_python_examples()) == 2


def test_the_embedded_example_prints_what_its_comments_say(tmp_path: Path) -> None:
    example = _python_examples()[0]
    done = _run(_prelude(unique_cluster_name(), _own_group()) + example, tmp_path)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[:3] == ["{'user': 7}", "{'user': 7}", "True you"]
    events = printed[3:]
    assert events[0].startswith("ChangeEvent(kind='set', key=('session', '42')")
    assert events[-1].startswith("ChangeEvent(kind='delete', key=('session', '43')")


def test_the_blocking_example_runs_against_a_running_node(tmp_path: Path) -> None:
    cluster, group = unique_cluster_name(), _own_group()
    log = tmp_path / "node.log"
    with log.open("w") as sink:
        node = subprocess.Popen(
            [
                *(sys.executable, "-m", "paxoskv.cli", "node", "--node-id", "r1"),
                *("--data-dir", str(tmp_path / "r1"), "--bootstrap-expect", "1"),
                *("--cluster", cluster, "--group", group),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
        )
    try:
        wait_for_text(log, "leader is now r1", EXAMPLE_TIMEOUT_S)
        done = _run(_prelude(cluster, group) + _python_examples()[1], tmp_path)
    finally:
        stop_process(node)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ChangeEvent(kind='set', key='config/theme', value='dark'")
