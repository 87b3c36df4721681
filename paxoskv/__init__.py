"""paxos-kv: a Paxos-replicated key-value store kept in RAM and persisted by prevalence.

The public face of the package::

    import paxoskv

    async with paxoskv.Node(paxoskv.Config(data_dir="data/n1", bootstrap_expect=3)) as node:
        await node.set("greeting", "hello")

    async with paxoskv.connect(paxoskv.Config(durability="memory")) as client:
        print(await client.get("greeting"))

Layers below it (``paxos``, ``state``, ``storage``, ``transport``, ``runtime``) are importable
for those who embed or test them, but this module is what an application is meant to touch.
"""

from typing import Any

from paxoskv import errors
from paxoskv.blocking import BlockingClient, open_blocking
from paxoskv.client import KVApi
from paxoskv.config import Config, load_config
from paxoskv.node import Node
from paxoskv.remote import Client, connect
from paxoskv.runtime.membership import Member
from paxoskv.state import ChangeEvent, Compare, Delete, KeyValue, Set

__version__: str


def __getattr__(name: str) -> Any:
    """``__version__``, looked up only when asked for.

    ``importlib.metadata`` (and the email and zip machinery it pulls in) is a sizeable share
    of a node's start-up, which a restarted node spends before it can serve; only the CLI's
    ``--version`` and tools that ask need the installed distribution's version.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("paxos-kv")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found


__all__ = [
    "BlockingClient",
    "ChangeEvent",
    "Client",
    "Compare",
    "Config",
    "Delete",
    "KVApi",
    "KeyValue",
    "Member",
    "Node",
    "Set",
    "__version__",
    "connect",
    "errors",
    "load_config",
    "open_blocking",
]
