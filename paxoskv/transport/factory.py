"""One call from settings to a running transport, so the runtime never names a class.

The fault wrapper is switched on here, by configuration alone: a chaos run is the same
binary and the same code path with ``[transport.faults]`` set.
"""

from __future__ import annotations

from paxoskv.transport.base import Transport
from paxoskv.transport.settings import TransportKind, TransportSettings
from paxoskv.transport.udp import UdpTransport

__all__ = ["open_transport"]


async def open_transport(node_id: str, settings: TransportSettings | None = None) -> Transport:
    """Open the transport ``settings`` describe (UDP multicast on loopback by default)."""
    settings = settings if settings is not None else TransportSettings()
    transport: Transport
    if settings.kind is TransportKind.TIPC:
        # Imported here: UDP is the default, and the CLI's client commands start faster
        # without loading a transport they do not use.
        from paxoskv.transport.tipc import TipcTransport

        transport = await TipcTransport.open(node_id, settings)
    else:
        transport = await UdpTransport.open(node_id, settings)
    if settings.faults is not None:
        # Imported here: only a chaos run wraps its transport in one.
        from paxoskv.transport.faults import FaultyTransport

        return FaultyTransport(transport, settings.faults, inbox_frames=settings.inbox_frames)
    return transport
