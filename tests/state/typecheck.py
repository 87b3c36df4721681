"""What mypy refuses in a snippet of code, checked against this repository's package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def refused_lines(code: str) -> list[str]:
    """The line numbers (as text, sorted) of every error mypy reports in ``code``."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null", "--no-incremental", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    refused = sorted(line.split(":")[1] for line in done.stdout.splitlines() if ": error:" in line)
    assert refused or done.returncode == 0, done.stdout + done.stderr  # mypy ran at all
    return refused
