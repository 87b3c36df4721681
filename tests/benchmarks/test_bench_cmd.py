"""``paxos-kv bench``: what it runs, and the errors a user can meet before anything runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxoskv.cli import bench_cmd, main


@pytest.fixture
def harness_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr(bench_cmd, "run_harness", fake_run)
    return calls


def test_bench_alone_runs_the_harness_for_paxos_kv_only(harness_calls: list[list[str]]) -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", "--out-dir", "/tmp/out"])
    assert result.exit_code == 0, result.output
    (argv,) = harness_calls
    assert argv[0] == sys.executable
    assert Path(argv[1]).name == "compare.py" and Path(argv[1]).is_file()
    assert argv[2:] == ["--systems", "paxoskv", "--quick", "--out-dir", "/tmp/out"]


def test_compare_adds_pysyncobj(
    harness_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    result = CliRunner().invoke(main, ["bench", "--compare"])
    assert result.exit_code == 0, result.output
    assert harness_calls[0][2:] == ["--systems", "paxoskv,pysyncobj"]


def test_compare_without_pysyncobj_says_how_to_install_it(
    harness_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    result = CliRunner().invoke(main, ["bench", "--compare"])
    assert result.exit_code == 2
    assert "pip install 'paxos-kv[bench]'" in result.output
    assert harness_calls == []


def test_a_missing_harness_is_explained(
    harness_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_cmd, "HARNESS", Path("no-such-dir") / "compare.py")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["bench"])
    assert result.exit_code == 4
    assert "source checkout" in result.output
    assert "Traceback" not in result.output


def test_the_harness_exit_code_is_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_cmd, "run_harness", lambda argv: 1)
    assert CliRunner().invoke(main, ["bench"]).exit_code == 1
