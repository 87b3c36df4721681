"""Membership as replicated state: quorums count voters only; changes go through the log."""

from __future__ import annotations

import pytest

from paxoskv.errors import ConfigurationError
from paxoskv.state import (
    AddLearner,
    Command,
    ConfigChanged,
    Configuration,
    DemoteVoter,
    Failed,
    KVStateMachine,
    PromoteLearner,
    RemoveMember,
)


def config(voters: str, learners: str = "") -> Configuration:
    return Configuration(frozenset(voters), frozenset(learners))


@pytest.mark.parametrize(("voters", "size"), [("a", 1), ("ab", 2), ("abc", 2), ("abcd", 3)])
def test_quorum_size_is_a_majority_of_voters(voters: str, size: int) -> None:
    assert config(voters, "xyz").quorum_size() == size


def test_is_quorum_counts_only_voters() -> None:
    c = config("abc", "lm")
    assert c.is_quorum(["a", "b"])
    assert not c.is_quorum(["a", "l", "m"])
    assert not c.is_quorum(["a", "a"])
    assert c.is_quorum(iter(["c", "b", "zz"]))
    assert c.members() == frozenset("abclm")


def test_a_configuration_checks_its_ids_and_accepts_any_iterable() -> None:
    assert Configuration({"a"}, ["b"]).learners == frozenset({"b"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="both voter and learner"):
        config("ab", "b")
    with pytest.raises(ConfigurationError):
        Configuration(frozenset({""}))
    with pytest.raises(ConfigurationError, match="not one string"):
        Configuration("abc")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Configuration(frozenset({1}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "command", "after"),
    [
        (config("ab"), AddLearner("c"), config("ab", "c")),
        (config("ab", "c"), PromoteLearner("c"), config("abc")),
        (config("ab"), DemoteVoter("b"), config("a", "b")),
        (config("ab", "c"), RemoveMember("c"), config("ab")),
        (config("ab", "c"), RemoveMember("b"), config("a", "c")),
    ],
)
def test_valid_changes_apply_and_record_their_revision(
    start: Configuration, command: Command, after: Configuration
) -> None:
    m = KVStateMachine(start)
    assert m.apply(command, 0) == ConfigChanged(1, after)
    assert m.configuration == after
    assert m.configuration_revision == 1


@pytest.mark.parametrize(
    ("start", "command"),
    [
        (config("ab"), AddLearner("a")),
        (config("ab", "c"), AddLearner("c")),
        (config("ab"), PromoteLearner("a")),
        (config("ab"), PromoteLearner("z")),
        (config("ab", "c"), DemoteVoter("c")),
        (config("a", "c"), DemoteVoter("a")),
        (config("a", "c"), RemoveMember("a")),
        (config("ab"), RemoveMember("z")),
    ],
)
def test_invalid_changes_fail_deterministically_and_change_nothing(
    start: Configuration, command: Command
) -> None:
    m = KVStateMachine(start)
    result = m.apply(command, 0)
    assert isinstance(result, Failed)
    assert result.error_code == "invalid_config_change"
    assert result.revision == 1
    assert m.configuration == start
    assert m.configuration_revision == 0


def test_the_wire_form_is_sorted_whatever_the_hash_seed() -> None:
    assert config("cab", "zy").to_wire() == [["a", "b", "c"], ["y", "z"]]
    assert Configuration.from_wire([["a", "b"], ["c"]]) == config("ab", "c")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (PromoteLearner("z"), "node 'z' is not a member of the cluster (members() lists"),
        (PromoteLearner("a"), "node 'a' is a voter already, so it cannot be promoted"),
        (DemoteVoter("z"), "node 'z' is not a member of the cluster (members() lists"),
        (DemoteVoter("c"), "node 'c' is a learner already, so it cannot be demoted"),
    ],
)
def test_a_change_naming_a_node_says_whether_it_is_a_member_at_all(
    command: Command, message: str
) -> None:
    """`members promote nosuch` said 'not a learner', as if it were a voter."""
    result = KVStateMachine(config("ab", "c")).apply(command, 0)
    assert isinstance(result, Failed)
    assert result.message.startswith(message)
