"""Where a command's cluster settings come from: flags, then PAXOS_KV_* variables, then TOML."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, FakeCluster


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_loopback_and_the_default_group(cli: Cli, fake: FakeCluster) -> None:
    cli("status")
    config = fake.configs[-1]
    assert (config.interface, config.group, config.cluster) == (
        "127.0.0.1",
        "239.192.74.75:47475",
        "paxos-kv",
    )
    assert config.durability == "memory" and config.request_timeout_s == 5.0


def test_flags_reach_the_client_config(cli: Cli, fake: FakeCluster, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    cli(
        "status",
        "--group", "239.1.2.3:4000",
        "--cluster", "blue",
        "--scope", "unicast",
        "--peer", "127.0.0.1:5000",
        "--peer", "127.0.0.1:5001",
        "--secret-file", str(secret),
        "--timeout", "2.5",
    )  # fmt: skip
    config = fake.configs[-1]
    assert config.group == "239.1.2.3:4000"
    assert config.cluster == "blue"
    assert config.scope == "unicast"
    assert config.peers == ("127.0.0.1:5000", "127.0.0.1:5001")
    assert config.cluster_secret() == b"s" * 32
    assert config.request_timeout_s == 2.5


def test_flags_beat_environment_beats_file(cli: Cli, fake: FakeCluster, tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path / "c.toml",
        '[paxos-kv]\ncluster = "from-file"\ngroup = "239.9.9.9:9999"\nrequest-timeout-s = 7\n',
    )
    env = {"PAXOS_KV_CLUSTER": "from-env", "PAXOS_KV_GROUP": "239.8.8.8:8888"}
    cli("status", "--config", str(toml), "--cluster", "from-flag", env=env)
    config = fake.configs[-1]
    assert config.cluster == "from-flag"
    assert config.group == "239.8.8.8:8888"
    assert config.request_timeout_s == 7.0


def test_the_config_file_can_come_from_the_environment(
    cli: Cli, fake: FakeCluster, tmp_path: Path
) -> None:
    toml = write_toml(tmp_path / "c.toml", 'cluster = "green"\n')
    cli("status", env={"PAXOS_KV_CONFIG": str(toml)})
    assert fake.configs[-1].cluster == "green"


def test_a_node_settings_file_serves_clients_too(
    cli: Cli, fake: FakeCluster, tmp_path: Path
) -> None:
    """A file written for a node (data dir, durable) must not stop a client from starting."""
    toml = write_toml(tmp_path / "node.toml", f'data_dir = "{tmp_path}"\ndurability = "durable"\n')
    assert cli("status", "--config", str(toml)).exit_code == 0
    assert fake.configs[-1].durability == "memory"


def test_a_bad_environment_value_exits_2_naming_the_variable(cli: Cli, fake: FakeCluster) -> None:
    result = cli("status", env={"PAXOS_KV_REQUEST_TIMEOUT_S": "soon"})
    assert result.exit_code == 2
    assert "$PAXOS_KV_REQUEST_TIMEOUT_S" in result.stderr
    assert fake.calls == []


def test_a_missing_or_broken_config_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    missing = cli("status", "--config", str(tmp_path / "absent.toml"))
    assert missing.exit_code == 2 and "cannot read config file" in missing.stderr
    broken = write_toml(tmp_path / "broken.toml", "cluster = \n")
    result = cli("status", "--config", str(broken))
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_an_unreadable_secret_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    result = cli("status", "--secret-file", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "cannot read the secret file" in result.stderr


def test_config_mistakes_exit_2_with_one_line_naming_setting_source_and_type(
    cli: Cli, fake: FakeCluster, tmp_path: Path
) -> None:
    """Before: AttributeError tracebacks ('str' object has no attribute 'seed', ...), exit 1."""
    faults = cli("get", "k", env={"PAXOS_KV_FAULTS": "drop=0.1"})
    assert faults.exit_code == 2 and "$PAXOS_KV_FAULTS: faults = 'drop=0.1'" in faults.stderr
    for toml, expected in [
        ("group = 5", "group = 5 is not valid: it must be a string"),
        ("cluster = 7", "cluster = 7 is not valid: it must be a string"),
        ('faults = "x"', "faults = 'x' is not valid: it must be a table"),
    ]:
        path = write_toml(tmp_path / "c.toml", toml + "\n")
        result = cli("get", "k", "--config", str(path))
        assert result.exit_code == 2, result.stderr
        assert f"config file {path}: {expected}" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    typo = cli("get", "k", env={"PAXOS_KV_CLUSTR": "x"})
    assert typo.exit_code == 2 and "did you mean $PAXOS_KV_CLUSTER" in typo.stderr
    group = cli("get", "k", "--group", "239.192.74.99")
    assert group.exit_code == 2 and "group '239.192.74.99' has no port" in group.stderr
    assert fake.calls == []


def test_a_config_file_that_is_not_utf8_exits_2_in_one_line(cli: Cli, tmp_path: Path) -> None:
    """tomllib let its UnicodeDecodeError through: a traceback and exit 1, the code scripts
    read as "key not found" (CLI audit, twenty-second session)."""
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'cluster = "caf\xe9"\n')
    result = cli("status", "--config", str(latin))
    assert result.exit_code == 2 and "is not UTF-8 text (byte 0xe9" in result.stderr
    assert len(result.stderr.splitlines()) == 1
