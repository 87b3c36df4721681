"""The event loop our own processes pick: uvloop when installed and allowed, else asyncio's."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from paxoskv import Config
from paxoskv.errors import ConfigurationError
from paxoskv.runtime.loop import loop_factory, loop_name, run

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_asyncio_whatever_is_installed() -> None:
    assert loop_factory("asyncio") is None
    assert loop_name("asyncio") == "asyncio"
    assert run(_loop_module(), event_loop="asyncio").startswith("asyncio")


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (pip install '.[fast]')")
def test_auto_and_uvloop_run_on_uvloop_when_it_is_installed() -> None:
    assert loop_name("auto") == loop_name("uvloop") == "uvloop"
    assert run(_loop_module(), event_loop="auto").startswith("uvloop")


def test_an_unknown_loop_is_a_configuration_error_that_names_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="auto, asyncio, uvloop"):
        run(_loop_module(), event_loop="tokio")
    with pytest.raises(ConfigurationError, match="auto, asyncio, uvloop"):
        Config(event_loop="tokio")


def test_asking_for_uvloop_without_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_uvloop(name: str, *args: object, **kwargs: object) -> object:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto") is None  # auto falls back quietly
    with pytest.raises(ConfigurationError, match=r"pip install 'paxos-kv\[fast\]'"):
        loop_factory("uvloop")


def test_run_tunes_the_collector_for_a_node_and_puts_it_back() -> None:
    import gc

    from paxoskv.runtime.loop import NODE_GC_GEN0

    async def threshold() -> int:
        return gc.get_threshold()[0]

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        assert run(threshold(), event_loop="asyncio") == NODE_GC_GEN0
        assert gc.get_threshold() == (700, before[1], before[2])
        gc.set_threshold(NODE_GC_GEN0 * 2, before[1], before[2])  # a higher one is kept
        assert run(threshold(), event_loop="asyncio") == NODE_GC_GEN0 * 2
    finally:
        gc.set_threshold(*before)


def test_start_up_objects_are_frozen_only_in_a_process_paxoskv_runs() -> None:
    import gc

    from paxoskv.runtime.loop import node_collector, start_up_done

    # Counted from what is frozen already: an earlier test of this process may have run a
    # node under loop.run, which freezes its start-up for good.
    before = gc.get_freeze_count()
    start_up_done()  # an application embedding a node: its collector is left alone
    assert gc.get_freeze_count() == before
    try:
        with node_collector():
            start_up_done()
            assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
    assert gc.isenabled()
