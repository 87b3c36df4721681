"""The commands against an in-memory cluster: parsing, output formats and exit codes."""

from __future__ import annotations

import json

import pytest

from paxoskv.errors import (
    CorruptData,
    NoQuorum,
    ValueTooLarge,
    WrongEncryptionKey,
    WrongSecret,
)
from paxoskv.state import Set, encode_command
from paxoskv.state.wire import MAX_NESTING
from tests.cli.conftest import Cli, FakeCluster


def put(fake: FakeCluster, key: object, value: object) -> None:
    fake.submit("seed", fake.machine.revision + 1, encode_command(Set(key, value)))  # type: ignore[arg-type]


# --- get ------------------------------------------------------------------------------------


def test_get_prints_a_string_raw(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "greeting", "hello")
    result = cli("get", "greeting")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello\n", "")


def test_get_prints_other_values_as_json(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "n", {"a": [1, 2.5, None, True], "b": b"\x00\xff"})
    result = cli("get", "n")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"a": [1, 2.5, None, True], "b": {"$bytes": "AP8="}}


def test_get_writes_bytes_values_unchanged(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "blob", b"\x00\x01binary\xff")
    assert cli("get", "blob").stdout_bytes == b"\x00\x01binary\xff"


def test_get_json_has_the_entry_fields(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "k", "v1")
    put(fake, "k", "v2")
    document = json.loads(cli("get", "k", "--json").stdout)
    assert document == {
        "key": "k",
        "value": "v2",
        "create_revision": 1,
        "mod_revision": 2,
        "version": 2,
        "lease": None,
    }


def test_get_of_a_missing_key_exits_1_with_one_line(cli: Cli) -> None:
    result = cli("get", "x")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "paxos-kv: key 'x' not found\n"


@pytest.mark.parametrize("consistency", ["linearizable", "leader", "local"])
def test_get_passes_the_consistency_on(cli: Cli, fake: FakeCluster, consistency: str) -> None:
    put(fake, "k", "v")
    assert cli("get", "k", "--consistency", consistency).exit_code == 0
    assert ("read get", consistency) in fake.calls


def test_get_with_an_unknown_consistency_is_a_usage_error(cli: Cli, fake: FakeCluster) -> None:
    result = cli("get", "k", "--consistency", "eventual")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("paxos-kv: usage error: Invalid value for '--consistency'")
    assert "'paxos-kv get --help'" in result.stderr
    assert fake.calls == []


def test_node_option_pins_the_client(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "k", "v")
    cli("get", "k", "--node", "n3", "--consistency", "local")
    cli("get", "k")
    assert fake.targets == ["n3", None]


# --- set ------------------------------------------------------------------------------------


def test_set_prints_the_revision_and_stores_text(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "other", "x")
    result = cli("set", "zip", "01234")
    assert (result.exit_code, result.stdout) == (0, "2\n")
    entry = fake.machine.get("zip")
    assert entry is not None and entry.value == "01234"


def test_set_json_value_parses_the_value(cli: Cli, fake: FakeCluster) -> None:
    assert cli("set", "n", "5", "--json-value").exit_code == 0
    assert cli("set", "d", '{"a": [1, "x"]}', "--json-value").exit_code == 0
    assert fake.machine.get("n").value == 5  # type: ignore[union-attr]
    assert fake.machine.get("d").value == {"a": [1, "x"]}  # type: ignore[union-attr]


def test_what_get_json_prints_set_json_value_stores_again(cli: Cli, fake: FakeCluster) -> None:
    """The tags round-trip: a bytes value, a map with int keys (CLI audit: `get --json` of
    {1: "a", "1": "b"} printed {"1": "b"}, and --json-value took {"$bytes": ...} for a map)."""
    put(fake, "src", {1: "a", "1": "b", "raw": b"\x01\x02"})
    printed = json.loads(cli("get", "src", "--json").stdout)["value"]
    assert cli("set", "dst", json.dumps(printed), "--json-value").exit_code == 0
    assert fake.machine.get("dst").value == {1: "a", "1": "b", "raw": b"\x01\x02"}  # type: ignore[union-attr]
    bad = cli("set", "x", '{"$bytes": "not base64!"}', "--json-value")
    assert bad.exit_code == 2 and "not base64" in bad.stderr


def test_set_json_value_that_is_not_json_is_a_usage_error(cli: Cli, fake: FakeCluster) -> None:
    result = cli("set", "n", "{oops", "--json-value")
    assert result.exit_code == 2
    assert "is not JSON" in result.stderr and len(result.stderr.splitlines()) == 1
    assert fake.machine.get("n") is None


def test_set_with_ttl_attaches_a_lease(cli: Cli, fake: FakeCluster) -> None:
    assert cli("set", "session", "s1", "--ttl", "30").exit_code == 0
    entry = fake.machine.get("session")
    assert entry is not None and entry.lease_id is not None


@pytest.mark.parametrize("ttl", ["0", "-1", "soon"])
def test_set_with_a_bad_ttl_is_a_usage_error(cli: Cli, ttl: str) -> None:
    assert cli("set", "k", "v", "--ttl", ttl).exit_code == 2


def test_set_if_revision_writes_only_at_that_revision(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "k", "v1")
    stale = cli("set", "k", "v2", "--if-revision", "7")
    assert stale.exit_code == 1
    assert stale.stderr.startswith(
        "paxos-kv: error: 'k' was last modified at revision 1, not 7; nothing written"
    )
    assert fake.machine.get("k").value == "v1"  # type: ignore[union-attr]
    fresh = cli("set", "k", "v2", "--if-revision", "1")
    assert (fresh.exit_code, fake.machine.get("k").value) == (0, "v2")  # type: ignore[union-attr]


def test_set_if_revision_0_creates_only(cli: Cli, fake: FakeCluster) -> None:
    assert cli("set", "k", "first", "--if-revision", "0").exit_code == 0
    again = cli("set", "k", "second", "--if-revision", "0")
    assert again.exit_code == 1 and "'k' already exists" in again.stderr
    assert fake.machine.get("k").value == "first"  # type: ignore[union-attr]


def test_set_if_revision_on_a_key_that_never_existed_says_it_does_not_exist(cli: Cli) -> None:
    result = cli("set", "tt2", "v", "--if-revision", "1")
    assert result.exit_code == 1
    assert "'tt2' does not exist, so it is not at revision 1" in result.stderr


def test_a_ttl_beyond_the_limit_is_refused_in_seconds(cli: Cli, fake: FakeCluster) -> None:
    result = cli("set", "k", "v", "--ttl", "1e12")
    assert result.exit_code == 2
    assert "lease ttl_s 1000000000000.0 is out of range" in result.stderr
    assert "3,155,760,000 seconds" in result.stderr and "ttl_ms" not in result.stderr


def test_a_json_value_nested_too_deep_is_a_usage_error(cli: Cli, fake: FakeCluster) -> None:
    result = cli("set", "deep", "[" * 5000 + "]" * 5000, "--json-value")
    assert result.exit_code == 2
    assert "nests too deep" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr and fake.calls == []


def test_a_json_value_json_parses_but_too_deep_to_store_is_the_same_usage_error(
    cli: Cli, fake: FakeCluster
) -> None:
    """300 levels parse as JSON but nest past what a value may (MAX_NESTING): the same one
    line as 5,000 levels, where the parser gives up. It said "error:" from the store before."""
    result = cli("set", "deep", "[" * 300 + "]" * 300, "--json-value")
    assert result.exit_code == 2
    assert f"nests too deep: a value may nest at most {MAX_NESTING} levels" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and fake.calls == []


def test_a_json_value_at_the_nesting_limit_is_stored(cli: Cli, fake: FakeCluster) -> None:
    result = cli("set", "deep", "[" * MAX_NESTING + "]" * MAX_NESTING, "--json-value")
    assert result.exit_code == 0, result.stderr


def test_watch_from_the_oldest_kept_revision_works_and_before_it_names_it(
    cli: Cli, fake: FakeCluster
) -> None:
    from paxoskv.state import Configuration, KVStateMachine

    fake.machine = KVStateMachine(Configuration(voters=frozenset(("n1",))), history_limit_events=3)
    for i in range(5):
        put(fake, "k", str(i))  # revisions 1-5; 1 and 2 dropped
    kept = cli("watch", "--from-revision", "3", "--count", "3")
    assert kept.exit_code == 0 and [line.split()[0] for line in kept.stdout.splitlines()] == [
        "3",
        "4",
        "5",
    ]
    gone = cli("watch", "--from-revision", "2", "--count", "1")
    assert gone.exit_code == 1
    assert "revision 2 is compacted" in gone.stderr
    assert "Watch from revision 3 or later" in gone.stderr


def test_an_oversized_value_says_so_and_exits_2(cli: Cli, fake: FakeCluster) -> None:
    result = cli("set", "big", "x" * 60_000)
    assert result.exit_code == 2
    assert result.stderr.startswith("paxos-kv: error: request of ")
    assert "over the limit of" in result.stderr
    assert fake.machine.get("big") is None


# --- delete, keys ---------------------------------------------------------------------------


def test_delete_removes_and_a_second_delete_exits_1(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "k", "v")
    assert cli("delete", "k").exit_code == 0
    again = cli("delete", "k")
    assert (again.exit_code, again.stderr) == (1, "paxos-kv: key 'k' not found\n")
    assert cli("delete", "k", "--missing-ok").exit_code == 0


def test_keys_lists_every_kind_of_key_readably(cli: Cli, fake: FakeCluster) -> None:
    for key in ["user/2", "user/1", "app", b"raw", ("session", "abc", 7)]:
        put(fake, key, 1)
    result = cli("keys")
    assert result.stdout.splitlines() == [
        "app",
        "user/1",
        "user/2",
        "b'raw'",
        "('session', 'abc', 7)",
    ]
    assert cli("keys", "user/").stdout.splitlines() == ["user/1", "user/2"]


def test_keys_json_keeps_tuples_and_bytes_apart_from_strings(cli: Cli, fake: FakeCluster) -> None:
    for key in ["a", b"a", ("a", 1)]:
        put(fake, key, 1)
    assert json.loads(cli("keys", "--json").stdout) == ["a", {"$bytes": "YQ=="}, ["a", 1]]


def test_keys_of_an_empty_prefix_prints_nothing(cli: Cli) -> None:
    result = cli("keys", "nothing/")
    assert (result.exit_code, result.stdout) == (0, "")


# --- watch ----------------------------------------------------------------------------------


def test_watch_count_prints_that_many_events_and_exits_0(cli: Cli, fake: FakeCluster) -> None:
    put(fake, "user/1", "ada")
    put(fake, "other", "x")
    put(fake, "user/2", {"n": 1})
    cli("delete", "user/1")
    result = cli("watch", "user/", "--from-revision", "1", "--count", "3")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "1 set user/1 ada",
        '3 set user/2 {"n":1}',
        "4 delete user/1",
    ]
    assert ("watch", ("user/", 1)) in fake.calls


def test_watch_json_prints_one_document_per_line(cli: Cli, fake: FakeCluster) -> None:
    put(fake, ("t", 1), "x")
    result = cli("watch", "--from-revision", "1", "--count", "1", "--json")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"revision": 1, "kind": "set", "key": ["t", 1], "value": "x", "prev_value": None}
    ]


def test_watch_without_prefix_or_revision_asks_for_everything_from_now(
    cli: Cli, fake: FakeCluster
) -> None:
    fake.fail_with, fake.fail_only = NoQuorum("stop here"), "watch"
    assert cli("watch").exit_code == 3
    assert fake.calls[-1] == ("watch", (None, None))


@pytest.mark.parametrize("args", [["--count", "0"], ["--from-revision", "0"], ["--count", "x"]])
def test_watch_bad_numbers_are_usage_errors(cli: Cli, args: list[str]) -> None:
    assert cli("watch", *args).exit_code == 2


# --- members, status --------------------------------------------------------------------------


def test_members_prints_an_aligned_table_with_the_leader_marked(cli: Cli) -> None:
    assert cli("members").stdout.splitlines() == [
        "ID  ROLE     STATE    APPLIED  LEADER",
        "n1  voter    up       0",
        "n2  voter    up       0        *",
        "n3  voter    down     0",
        "l1  learner  suspect  1",
    ]


def test_members_json(cli: Cli) -> None:
    document = json.loads(cli("members", "--json").stdout)
    assert document[1] == {
        "node_id": "n2",
        "role": "voter",
        "state": "up",
        "applied_revision": 0,
        "is_leader": True,
    }


def test_members_promote_and_remove_go_through_the_log(cli: Cli, fake: FakeCluster) -> None:
    fake.machine.apply(__import__("paxoskv.state").state.AddLearner("n4"), 1)
    promoted = cli("members", "promote", "n4")
    assert (promoted.exit_code, promoted.stdout) == (0, "promoted n4\n")
    assert "n4" in fake.machine.configuration.voters
    removed = cli("members", "remove", "n4")
    assert (removed.exit_code, removed.stdout) == (0, "removed n4\n")
    assert "n4" not in fake.machine.configuration.members()


def test_members_options_given_before_the_subcommand_count(cli: Cli, fake: FakeCluster) -> None:
    fake.fail_with = NoQuorum("no")
    cli("members", "--cluster", "blue", "promote", "n4")
    assert fake.configs[-1].cluster == "blue"


def test_status_prints_flat_lines_and_json(cli: Cli, fake: FakeCluster) -> None:
    text = cli("status").stdout.splitlines()
    assert "node_id: n2" in text
    assert "voters: n1, n2, n3" in text
    assert "learners: -" in text
    assert "data_dir: -" in text
    assert "transport.sent_frames: 7" in text
    assert json.loads(cli("status", "--json").stdout)["transport"] == {"sent_frames": 7}


# --- errors and exit codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "start"),
    [
        (NoQuorum("no majority answered"), 3, "paxos-kv: error: no majority answered"),
        (TimeoutError(), 3, "paxos-kv: error: no answer in time; check that the nodes"),
        (WrongSecret("frames do not authenticate"), 3, "paxos-kv: error: frames do not"),
        (ValueTooLarge(10, 5), 2, "paxos-kv: error: value of 10 bytes is over"),
        (CorruptData("/d/j.log", 7, "bad crc"), 4, "paxos-kv: error: corrupt data in /d/j.log"),
        (PermissionError(13, "Permission denied", "/x"), 4, "paxos-kv: error: Permission denied"),
        (  # a setting, as a key given to a data dir written without one is (CLI audit)
            WrongEncryptionKey("/d/snap", key_given=False),
            2,
            "paxos-kv: error: /d/snap is encrypted, and no encryption key was given",
        ),
    ],
)
@pytest.mark.parametrize("command", [["get", "k"], ["set", "k", "v"], ["members"], ["status"]])
def test_errors_become_exit_codes_and_one_line(
    cli: Cli, fake: FakeCluster, error: BaseException, code: int, start: str, command: list[str]
) -> None:
    fake.fail_with = error
    result = cli(*command)
    assert result.exit_code == code
    assert result.stderr.startswith(start)
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_bug_keeps_its_traceback(cli: Cli, fake: FakeCluster) -> None:
    fake.fail_with = ZeroDivisionError("ours")
    result = cli("get", "k")
    assert isinstance(result.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    "args",
    [
        ["get"],
        ["get", "k", "--bogus"],
        ["set", "k"],
        ["nope"],
        ["get", "k", "--timeout", "0"],
        ["get", "k", "--scope", "anycast"],
    ],
)
def test_usage_errors_exit_2_with_one_line(cli: Cli, fake: FakeCluster, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("paxos-kv: usage error: ")
    assert len(result.stderr.splitlines()) == 1
    assert fake.calls == []


def test_a_bad_setting_exits_2_naming_it(cli: Cli, fake: FakeCluster) -> None:
    result = cli("get", "k", "--group", "10.0.0.1:5")
    assert result.exit_code == 2
    assert result.stderr.startswith("paxos-kv: error: multicast group '10.0.0.1'")
    assert fake.calls == []


def test_no_command_prints_the_help_as_it_reads(cli: Cli, fake: FakeCluster) -> None:
    # click 8.2 on raises it as a usage error whose message is the help: once pressed into
    # the one line usage errors get, every command and option ran together.
    result = cli()
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: paxos-kv [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.stderr
    assert fake.calls == []


def test_help_and_version_exit_0(cli: Cli) -> None:
    assert cli("--help").exit_code == 0
    assert "Exit codes" in cli("--help").stdout
    assert cli("get", "--help").exit_code == 0
    assert cli("--version").stdout.startswith("paxos-kv, version ")


@pytest.mark.parametrize("command", ["set", "delete", "watch", "members", "status"])
def test_node_help_does_not_offer_a_consistency_the_command_lacks(cli: Cli, command: str) -> None:
    text = cli(command, "--help").stdout
    assert "--node" in text and "--consistency" not in text


@pytest.mark.parametrize("command", ["get", "keys"])
def test_node_help_of_reads_speaks_of_local_reads(cli: Cli, command: str) -> None:
    assert "With --consistency local" in " ".join(cli(command, "--help").stdout.split())


def test_every_command_is_where_the_group_looks_for_it() -> None:
    """The group imports a command's module when the command is asked for (cli.main's
    COMMAND_HOMES): each entry must name a command of that name, and the help lists them all."""
    import click

    from paxoskv.cli.main import COMMAND_HOMES, main

    context = click.Context(main)
    assert main.list_commands(context) == sorted(COMMAND_HOMES)
    for name in COMMAND_HOMES:
        command = main.get_command(context, name)
        assert command is not None and command.name == name


def test_a_command_added_to_the_group_survives_the_group_loading_its_own() -> None:
    """An application may add a command of its own to ``main``; listing the commands (help,
    a misspelt command, completion) loads the group's and must keep it."""
    import click

    from paxoskv.cli.main import COMMAND_HOMES, main

    extra = click.Command("extra-for-test")
    main.add_command(extra)
    try:
        context = click.Context(main)
        assert main.list_commands(context) == sorted([*COMMAND_HOMES, "extra-for-test"])
        assert main.get_command(context, "extra-for-test") is extra
    finally:
        main.commands.pop("extra-for-test", None)
