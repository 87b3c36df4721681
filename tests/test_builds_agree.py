"""The compiled and the pure-Python core apply, refuse and decode alike (see agreement_replay).

The child process imports a copy of the package without its C extensions, so the comparison
is between the two builds of the same source. Where the core is not compiled there is only
one build, and the test says so by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import paxoskv
from paxoskv.compiled import compiled_core
from tests.agreement_replay import replay

SEEDS = (1, 2, 3)
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not compiled_core(), reason="the core is not compiled: one build only")
def test_the_two_builds_give_the_same_transcript(tmp_path: Path) -> None:
    shutil.copytree(
        Path(paxoskv.__file__).parent,
        tmp_path / "paxoskv",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    code = (
        "import json, sys; from paxoskv.compiled import build_name; "
        "from tests.agreement_replay import replay; "
        f"print(json.dumps([build_name(), *(replay(seed) for seed in {SEEDS!r})]))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    build, *pure = json.loads(done.stdout)
    assert build == "pure Python"
    compiled = [json.loads(json.dumps(replay(seed))) for seed in SEEDS]
    for seed, mine, theirs in zip(SEEDS, compiled, pure, strict=True):
        for part in ("slots", "snapshot", "restored", "datagrams"):
            assert mine[part] == theirs[part], f"seed {seed}: the builds differ in {part}"
