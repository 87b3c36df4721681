"""The history's bounds as settings: each source reaches the engine, a bad value fails early."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from paxoskv import Config
from paxoskv.config import load_config
from paxoskv.errors import ConfigurationError
from paxoskv.paxos.engine import Engine, EngineSettings
from paxoskv.paxos.records import DurableState
from paxoskv.state import Configuration, KVStateMachine
from paxoskv.state.history import DEFAULT_LIMIT_BYTES


def test_the_byte_bound_defaults_to_the_same_64_mib_everywhere() -> None:
    assert Config().history_limit_bytes == DEFAULT_LIMIT_BYTES == 64 << 20
    assert EngineSettings(node_id="a").history_limit_bytes == DEFAULT_LIMIT_BYTES


def test_the_engine_hands_its_byte_bound_to_the_state_machine_and_to_a_restore() -> None:
    settings = EngineSettings(node_id="a", history_limit_bytes=1234)
    genesis = Configuration(frozenset({"a"}))
    engine = Engine(settings, random.Random(0), genesis)
    assert engine.state._history.limit_bytes == 1234
    snapshot = KVStateMachine(genesis, history_limit_bytes=99).snapshot()
    restarted = Engine(
        settings, random.Random(0), genesis, durable=DurableState(state_snapshot=snapshot)
    )
    assert restarted.state._history.limit_bytes == 1234


def test_the_byte_bound_comes_from_toml_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("[paxos-kv]\nhistory-limit-bytes = 1048576\nhistory_limit_events = 50\n")
    config = load_config(config_file=toml, environ={})
    assert (config.history_limit_bytes, config.history_limit_events) == (1 << 20, 50)
    env = {"PAXOS_KV_HISTORY_LIMIT_BYTES": "4096"}
    assert load_config(config_file=toml, environ=env).history_limit_bytes == 4096


@pytest.mark.parametrize("limit", [0, -5, 1.5, True])
@pytest.mark.parametrize("name", ["history_limit_bytes", "history_limit_events"])
def test_a_history_bound_that_is_not_a_positive_int_is_refused_by_name(
    name: str, limit: object
) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be a positive whole number"):
        Config(**{name: limit})  # type: ignore[arg-type]


def test_a_byte_bound_that_is_not_a_number_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"\$PAXOS_KV_HISTORY_LIMIT_BYTES"):
        load_config(environ={"PAXOS_KV_HISTORY_LIMIT_BYTES": "64MiB"})
    with pytest.raises(ConfigurationError, match="history_limit_bytes must be a positive"):
        load_config(environ={"PAXOS_KV_HISTORY_LIMIT_BYTES": "0"})
