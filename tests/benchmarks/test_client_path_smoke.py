"""The client-path benchmark runs: every write answered, a CPU figure out."""

from __future__ import annotations

from benchmarks.client_path import measure


async def test_the_client_path_benchmark_writes_and_measures() -> None:
    best = await measure(writes=300, repeats=2)
    assert 0 < best < 100_000
