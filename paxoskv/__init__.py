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

from importlib.metadata import PackageNotFoundError, version

from paxoskv import errors
from paxoskv.blocking import BlockingClient, open_blocking
from paxoskv.client import KVApi
from paxoskv.config import Config, load_config
from paxoskv.node import Node
from paxoskv.remote import Client, connect
from paxoskv.runtime.membership import Member
from paxoskv.state import ChangeEvent, Compare, Delete, KeyValue, Set

try:
    __version__ = version("paxos-kv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
