"""Transports: how paxos-kv nodes reach each other. They move datagrams and know no Paxos.

``await open_transport(node_id, TransportSettings(...))`` gives a :class:`Transport`: UDP
multicast, broadcast or a unicast peer list (udp.py), TIPC (tipc.py), optionally wrapped in
seeded fault injection (faults.py). :class:`MemoryNetwork` (memory.py) runs many nodes in one
process. Frames and their authentication (frames.py, replay.py) are pure and shared by all.
"""

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
