"""Which configurations a new leader must hear from before it may lead.

A candidate recovers slots whose configurations depend on values it has not applied yet
(they are only in the promises it gathered). It re-proposes those values, so the
configurations they would bring about are the ones that may govern the slots it recovers.
Requiring a quorum of each (and of the configuration it already knows) keeps phase 1 sound
across a reconfiguration it has not seen chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
from paxoskv.state.configuration import RejectedChange

_CHANGES: dict[type[object], Callable[[Configuration, str], Configuration]] = {
    AddLearner: Configuration.with_learner_added,
    PromoteLearner: Configuration.with_learner_promoted,
    DemoteVoter: Configuration.with_voter_demoted,
    RemoveMember: Configuration.with_member_removed,
}


def apply_change(config: Configuration, command: object) -> Configuration:
    """The configuration after ``command``, by the state machine's own rules."""
    change = _CHANGES.get(type(command))
    if change is None:
        return config
    try:
        return change(config, command.node_id)  # type: ignore[attr-defined]
    except RejectedChange:  # the state machine refuses it too: nothing changes
        return config


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
