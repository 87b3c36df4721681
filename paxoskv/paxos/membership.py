"""Which configurations a new leader must hear from before it may lead.

A candidate recovers slots whose configurations depend on values it has not applied yet
(they are only in the promises it gathered). It re-proposes those values, so the
configurations they would bring about are the ones that may govern the slots it recovers.
Requiring a quorum of each (and of the configuration it already knows) keeps phase 1 sound
across a reconfiguration it has not seen chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

from paxoskv.paxos.batches import decode_batch
from paxoskv.paxos.messages import MalformedMessage
from paxoskv.state import (
    AddLearner,
    Configuration,
    DemoteVoter,
    MalformedCommand,
    PromoteLearner,
    RemoveMember,
    decode_command,
)


def apply_change(config: Configuration, command: object) -> Configuration:
    """The configuration after ``command``, the way the state machine would change it."""
    voters, learners = set(config.voters), set(config.learners)
    if isinstance(command, AddLearner) and command.node_id not in voters | learners:
        learners.add(command.node_id)
    elif isinstance(command, PromoteLearner) and command.node_id in learners:
        learners.discard(command.node_id)
        voters.add(command.node_id)
    elif isinstance(command, DemoteVoter) and command.node_id in voters and len(voters) > 1:
        voters.discard(command.node_id)
        learners.add(command.node_id)
    elif isinstance(command, RemoveMember) and (command.node_id in learners or len(voters) > 1):
        voters.discard(command.node_id)
        learners.discard(command.node_id)
    return Configuration(voters=frozenset(voters), learners=frozenset(learners))


def configs_implied_by(start: Configuration, values: Iterable[bytes]) -> list[Configuration]:
    """Every configuration the slot values would bring about, in log order."""
    configs: list[Configuration] = []
    config = start
    for value in values:
        try:
            _, requests = decode_batch(value)
        except MalformedMessage:
            continue
        for request in requests:
            if request.command == b"":
                continue
            try:
                command = decode_command(request.command)
            except MalformedCommand:
                continue
            changed = apply_change(config, command)
            if changed.voters != config.voters:
                configs.append(changed)
            config = changed
    return configs
