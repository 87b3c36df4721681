"""Multi-Paxos without I/O: the engine takes events and returns effects.

No sockets, files, asyncio, clocks or global randomness live here: time is an argument and
randomness a seeded ``random.Random`` handed in, so the same engine runs byte for byte under
the asyncio runtime and under the deterministic simulator.
"""

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
