"""Multi-Paxos without I/O: the engine takes events and returns effects.

No sockets, files, asyncio, clocks or global randomness live here: time is an argument and
randomness a seeded ``random.Random`` handed in, so the same engine runs byte for byte under
the asyncio runtime and under the deterministic simulator.
"""

from typing import TYPE_CHECKING

from paxoskv.lazy import lazy_attributes

if TYPE_CHECKING:
    from paxoskv.paxos.ballot import Ballot
    from paxoskv.paxos.effects import (
        Answer,
        Answers,
        Applied,
        Broadcast,
        Effect,
        LeaderChanged,
        Persist,
        ReadReady,
        SaveSnapshot,
        Send,
    )
    from paxoskv.paxos.engine import Engine, EngineSettings, Role
    from paxoskv.paxos.messages import (
        MalformedMessage,
        Message,
        Request,
        decode_message,
        encode_message,
    )
    from paxoskv.paxos.records import DurableState, decode_local_snapshot

# Imported on first use (paxoskv.lazy): the runtime's wire module needs the message codec
# alone, and a thin client should not load the engine to get it. The imports above are for type
# checkers only: the package ships py.typed, and users' checkers must see real types, not Any.
_HOMES = {
    "Ballot": "paxoskv.paxos.ballot",
    **dict.fromkeys(
        (
            "Answer",
            "Answers",
            "Applied",
            "Broadcast",
            "Effect",
            "LeaderChanged",
            "Persist",
            "ReadReady",
            "SaveSnapshot",
            "Send",
        ),
        "paxoskv.paxos.effects",
    ),
    **dict.fromkeys(("Engine", "EngineSettings", "Role"), "paxoskv.paxos.engine"),
    **dict.fromkeys(
        ("MalformedMessage", "Message", "Request", "decode_message", "encode_message"),
        "paxoskv.paxos.messages",
    ),
    **dict.fromkeys(("DurableState", "decode_local_snapshot"), "paxoskv.paxos.records"),
}
if not TYPE_CHECKING:  # so that a type checker still refuses a name that is not here
    __getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals())

__all__ = [
    "Answer",
    "Answers",
    "Applied",
    "Ballot",
    "Broadcast",
    "DurableState",
    "Effect",
    "Engine",
    "EngineSettings",
    "LeaderChanged",
    "MalformedMessage",
    "Message",
    "Persist",
    "ReadReady",
    "Request",
    "Role",
    "SaveSnapshot",
    "Send",
    "decode_local_snapshot",
    "decode_message",
    "encode_message",
]
