"""The history's bounds as settings: each source reaches the engine, a bad value fails early."""

from __future__ import annotations

import pickle
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    with pytest.raises(ConfigurationError, match=f"{name} must be a (positive )?whole number"):
        Config(**{name: limit})  # type: ignore[arg-type]


def test_a_byte_bound_that_is_not_a_number_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"\$PAXOS_KV_HISTORY_LIMIT_BYTES"):
        load_config(environ={"PAXOS_KV_HISTORY_LIMIT_BYTES": "64MiB"})
    with pytest.raises(ConfigurationError, match="history_limit_bytes must be a positive"):
        load_config(environ={"PAXOS_KV_HISTORY_LIMIT_BYTES": "0"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"request_timeout_s": "5"}, "request_timeout_s must be a finite number, not '5' (str)"),
        ({"request_timeout_s": float("nan")}, "request_timeout_s must be a finite number"),
        ({"group": 5}, "group must be a string, not 5 (int)"),
        ({"cluster": 7}, "cluster must be a string"),
        ({"peers": "127.0.0.1:5"}, "peers must be a list of strings"),
        ({"learner": "yes"}, "learner must be true or false"),
        ({"port": 1.5}, "port must be a whole number"),
        ({"faults": "x"}, "faults must be a table of fault settings"),
        ({"secret": "s3cr3t-s3cr3t-s3cr3t"}, "secret must be a string of bytes or unset"),
    ],
)
def test_a_config_field_of_the_wrong_type_names_the_field_and_the_type(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match="^setting " + re.escape(message)):
        Config(**settings)  # type: ignore[arg-type]


def test_a_secret_of_the_wrong_type_is_not_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config(secret="s3cr3t-s3cr3t-s3cr3t")  # type: ignore[arg-type]
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("group = 5", "group = 5 is not valid: it must be a string"),
        ("cluster = 7", "cluster = 7 is not valid: it must be a string"),
        ('faults = "x"', "faults = 'x' is not valid: it must be a table of fault settings"),
        ('[paxos-kv.faults]\ndrop_rate = "x"', "faults: drop_rate = 'x' must be a number"),
        ('port = "5000"', "port = '5000' is not valid: it must be a whole number"),
        ('peers = "127.0.0.1:5"', "peers = '127.0.0.1:5' is not valid: it must be a list"),
        ("learner = 1", "learner = 1 is not valid: it must be true or false"),
        ("paxos-kv = 3", r"\[paxos-kv\] must be a table"),
    ],
)
def test_a_toml_value_of_the_wrong_type_names_the_file_setting_and_type(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigurationError, match=f"^config file {path}: {message}"):
        load_config(config_file=path, environ={})


def test_a_faults_variable_says_faults_belong_in_the_toml_file() -> None:
    with pytest.raises(ConfigurationError, match=r"^\$PAXOS_KV_FAULTS: faults = 'drop=0.1'"):
        load_config(environ={"PAXOS_KV_FAULTS": "drop=0.1"})


def test_an_unknown_variable_is_refused_as_an_unknown_toml_key_is() -> None:
    with pytest.raises(
        ConfigurationError, match=r"\$PAXOS_KV_CLUSTR; did you mean \$PAXOS_KV_CLUSTER"
    ):
        load_config(environ={"PAXOS_KV_CLUSTR": "x"})
    assert load_config(environ={"PAXOS_KV_CLUSTER": "x", "OTHER": "y"}).cluster == "x"


def test_a_misspelt_setting_in_code_is_refused_as_one_in_a_file_is() -> None:
    # Python's own TypeError named neither the settings nor the likely one.
    with pytest.raises(ConfigurationError, match=r"'timeout_s'; did you mean request_timeout_s"):
        Config(node_id="a", timeout_s=3)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"by name .* not by position: 1 given"):
        Config(Path("/tmp/x"))
    config = Config(node_id="a", request_timeout_s=3)  # the right names still make one
    assert config.request_timeout_s == 3
    assert replace(config, node_id="b").node_id == "b"
    assert pickle.loads(pickle.dumps(config)) == config


def test_variables_of_every_type_still_parse() -> None:
    config = load_config(
        environ={
            "PAXOS_KV_SCOPE": "unicast",
            "PAXOS_KV_PEERS": "127.0.0.1:5,127.0.0.1:6",
            "PAXOS_KV_LEARNER": "yes",
            "PAXOS_KV_DATA_DIR": "d",
            "PAXOS_KV_REQUEST_TIMEOUT_S": "2.5",
            "PAXOS_KV_AUTO_REMOVE_DOWN_AFTER_S": "60",
        }
    )
    assert config.peers == ("127.0.0.1:5", "127.0.0.1:6") and config.learner is True
    assert (config.data_dir, config.request_timeout_s) == (Path("d"), 2.5)
    assert config.auto_remove_down_after_s == 60.0


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("239.192.74.99", "group '239.192.74.99' has no port: give the group as ADDRESS:PORT"),
        ("239.192.74.99:x", "group '239.192.74.99:x' is not an IPv4 ADDRESS:PORT"),
    ],
)
def test_a_group_without_a_port_is_called_a_group_not_a_peer(group: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        Config(group=group)
    assert "peer" not in str(caught.value)


def test_how_a_config_reaches_its_cluster_names_only_what_its_scope_uses() -> None:
    multicast = Config(group="239.1.2.3:4000")
    assert multicast.reach() == "on multicast group 239.1.2.3:4000 via 127.0.0.1"
    broadcast = Config(scope="broadcast", group="239.1.2.3:4000")
    assert "239.1.2.3" not in broadcast.reach() and "port 4000" in broadcast.reach()
    unicast = Config(scope="unicast", peers=("127.0.0.1:5000",))
    assert unicast.reach() == "by unicast from 127.0.0.1 to peers 127.0.0.1:5000"
    assert "--group" not in unicast.reach_flags() and "--peer" in unicast.reach_flags()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"snapshot_every_commands": 0}, "snapshot_every_commands must be at least 1"),
        ({"snapshot_every_bytes": -1}, "snapshot_every_bytes must be at least 1"),
    ],
)
def test_a_snapshot_interval_out_of_range_is_refused_by_name(
    setting: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config(**setting)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s must be positive"),
        ({"election_timeout_s": -1}, "election_timeout_s must be positive"),
        ({"hello_interval_s": 0}, "hello_interval_s must be positive"),
        ({"heartbeat_interval_s": 0.001}, "heartbeat_interval_s must be more than 2 ms"),
        ({"heartbeat_interval_s": 10}, r"must be at most a third of election_timeout_s"),
        ({"auto_remove_down_after_s": 0}, "auto_remove_down_after_s must be positive"),
    ],
)
def test_timers_a_node_cannot_run_on_are_refused_by_name(
    settings: dict[str, float], message: str
) -> None:
    """Each used to pass here and fail later: a ValueError traceback from the engine, or (a
    hello interval of 0) a node busy-looping on hellos."""
    with pytest.raises(ConfigurationError, match=message):
        Config(**settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"suspect_after_s": 3.0, "down_after_s": 2.0}, "need 0 < suspect_after_s < down_after_s"),
        (
            {"hello_interval_s": 2.0, "suspect_after_s": 0.3, "down_after_s": 0.6},
            r"suspect_after_s \(0.3\) must be more than hello_interval_s \(2\)",
        ),
        (
            {"hello_interval_s": 0.5, "suspect_after_s": 0.6, "down_after_s": 0.9},
            r"down_after_s \(0.9\) must be at least twice hello_interval_s",
        ),
        (
            {"auto_remove_down_after_s": 0.5},
            r"auto_remove_down_after_s \(0.5\) must be at least down_after_s \(3\)",
        ),
        ({"peers": ("127.0.0.1:7000",)}, "peers are the unicast scope's seeds"),
        ({"scope": "broadcast", "peers": ("127.0.0.1:7000",)}, "with scope broadcast"),
    ],
)
def test_failure_detector_settings_that_contradict_each_other_are_refused(
    settings: dict[str, Any], message: str
) -> None:
    """A hello every 2 s with ``down_after_s`` 0.6 passed, healthy peers went down between
    their hellos, and an ``auto_remove_down_after_s`` of 0.5 then removed two healthy voters
    (API audit, twenty-second session). Peers under multicast were silently ignored."""
    with pytest.raises(ConfigurationError, match=message):
        Config(**settings)


def test_the_failure_detector_defaults_and_their_edges_pass() -> None:
    Config()
    Config(hello_interval_s=0.5, suspect_after_s=0.6, down_after_s=1.0)
    Config(auto_remove_down_after_s=3.0)
    Config(scope="unicast", peers=("127.0.0.1:7000",))


def test_a_cluster_name_that_is_not_utf8_is_refused_not_a_traceback_at_start() -> None:
    with pytest.raises(ConfigurationError, match=r"cluster name .* is not valid text"):
        Config(cluster="\udcff")


def test_a_check_across_settings_says_which_came_from_a_file_or_a_variable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.toml"
    path.write_text("request_timeout_s = -3\n")
    with pytest.raises(ConfigurationError, match=rf"\(request_timeout_s from config file {path}\)"):
        load_config(config_file=path, environ={})
    environ = {"PAXOS_KV_HEARTBEAT_INTERVAL_S": "1", "PAXOS_KV_ELECTION_TIMEOUT_S": "2"}
    with pytest.raises(ConfigurationError) as caught:
        load_config(environ=environ)
    assert str(caught.value).endswith(
        "(heartbeat_interval_s from $PAXOS_KV_HEARTBEAT_INTERVAL_S, election_timeout_s from "
        "$PAXOS_KV_ELECTION_TIMEOUT_S)"
    )
    with pytest.raises(ConfigurationError, match=r"positive$"):  # a flag: its own name says it
        load_config({"request_timeout_s": -3}, environ={})


@pytest.mark.parametrize(("heartbeat", "election"), [(0.1, 0.3), (0.2, 0.6), (0.05, 0.15)])
def test_a_heartbeat_of_exactly_a_third_of_the_election_timeout_is_allowed(
    heartbeat: float, election: float
) -> None:
    """0.1 * 3 is 0.30000000000000004 in floating point: refused, with a message that said
    it must be at most a third (final review, twentieth session); the engine agrees."""
    from paxoskv.paxos.engine import EngineSettings

    Config(heartbeat_interval_s=heartbeat, election_timeout_s=election)
    EngineSettings(
        node_id="n1",
        heartbeat_interval_s=heartbeat,
        election_timeout_min_s=election,
        election_timeout_max_s=election * 2,
    )
