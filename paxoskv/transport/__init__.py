"""Transports: how paxos-kv nodes reach each other. They move datagrams and know no Paxos.

``await open_transport(node_id, TransportSettings(...))`` gives a :class:`Transport`: UDP
multicast, broadcast or a unicast peer list (udp.py), TIPC (tipc.py), optionally wrapped in
seeded fault injection (faults.py). :class:`MemoryNetwork` (memory.py) runs many nodes in one
process. Frames and their authentication (frames.py, replay.py) are pure and shared by all.
"""

from typing import TYPE_CHECKING

from paxoskv.lazy import lazy_attributes

if TYPE_CHECKING:
    from paxoskv.transport.base import Address, Delivery, DropReason, Transport, TransportStats
    from paxoskv.transport.factory import open_transport
    from paxoskv.transport.faults import FaultPlan, FaultSettings, FaultyTransport
    from paxoskv.transport.frames import Frame, FrameCodec, FrameKind, FrameOpener, FrameSealer
    from paxoskv.transport.memory import MemoryNetwork, MemoryTransport
    from paxoskv.transport.settings import (
        TipcSettings,
        TransportKind,
        TransportSettings,
        UdpScope,
        UdpSettings,
    )
    from paxoskv.transport.tipc import TipcTransport
    from paxoskv.transport.udp import UdpTransport

# Imported on first use (paxoskv.lazy), as paxoskv.paxos's are: a module that needs one of
# these pays for its own module only, not for every module of the package. The imports above
# are for type checkers (the package ships py.typed).
_HOMES = {
    **dict.fromkeys(
        ("Address", "Delivery", "DropReason", "Transport", "TransportStats"),
        "paxoskv.transport.base",
    ),
    "open_transport": "paxoskv.transport.factory",
    **dict.fromkeys(("FaultPlan", "FaultSettings", "FaultyTransport"), "paxoskv.transport.faults"),
    **dict.fromkeys(
        ("Frame", "FrameCodec", "FrameKind", "FrameOpener", "FrameSealer"),
        "paxoskv.transport.frames",
    ),
    **dict.fromkeys(("MemoryNetwork", "MemoryTransport"), "paxoskv.transport.memory"),
    **dict.fromkeys(
        ("TipcSettings", "TransportKind", "TransportSettings", "UdpScope", "UdpSettings"),
        "paxoskv.transport.settings",
    ),
    "TipcTransport": "paxoskv.transport.tipc",
    "UdpTransport": "paxoskv.transport.udp",
}
if not TYPE_CHECKING:  # so that a type checker still refuses a name that is not here
    __getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals())

__all__ = [
    "Address",
    "Delivery",
    "DropReason",
    "FaultPlan",
    "FaultSettings",
    "FaultyTransport",
    "Frame",
    "FrameCodec",
    "FrameKind",
    "FrameOpener",
    "FrameSealer",
    "MemoryNetwork",
    "MemoryTransport",
    "TipcSettings",
    "TipcTransport",
    "Transport",
    "TransportKind",
    "TransportSettings",
    "TransportStats",
    "UdpScope",
    "UdpSettings",
    "UdpTransport",
    "open_transport",
]
