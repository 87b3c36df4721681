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

from typing import TYPE_CHECKING, Any

from paxoskv import errors
from paxoskv.lazy import lazy_attributes

if TYPE_CHECKING:
    from paxoskv.blocking import BlockingClient, open_blocking
    from paxoskv.client import KVApi
    from paxoskv.config import Config, load_config
    from paxoskv.node import Node
    from paxoskv.remote import Client, connect
    from paxoskv.runtime.membership import Member
    from paxoskv.state import ChangeEvent, Compare, Delete, KeyValue, Set

__version__: str

# Where each public name lives. They are imported on first use (PEP 562), not here: the
# command line's client commands need the thin client only, and importing the replica, the
# engine and the storage with it was most of the half second `paxos-kv get` took to start.
_HOMES = {
    "BlockingClient": "paxoskv.blocking",
    "open_blocking": "paxoskv.blocking",
    "KVApi": "paxoskv.client",
    "Config": "paxoskv.config",
    "load_config": "paxoskv.config",
    "Node": "paxoskv.node",
    "Client": "paxoskv.remote",
    "connect": "paxoskv.remote",
    "Member": "paxoskv.runtime.membership",
    "ChangeEvent": "paxoskv.state",
    "Compare": "paxoskv.state",
    "Delete": "paxoskv.state",
    "KeyValue": "paxoskv.state",
    "Set": "paxoskv.state",
}


_lazy_getattr, _lazy_dir = lazy_attributes(__name__, _HOMES, globals())


if not TYPE_CHECKING:  # so that a type checker still refuses a name that is not here

    def __getattr__(name: str) -> Any:
        """A public name, imported from its module the first time it is asked for.

        ``__version__`` likewise: ``importlib.metadata`` (and the email and zip machinery it pulls
        in) is a sizeable share of a node's start-up, which a restarted node spends before it can
        serve; only the CLI's ``--version`` and tools that ask need the installed version.
        """
        if name != "__version__":
            return _lazy_getattr(name)
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("paxos-kv")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "0.0.0+unknown"
        globals()["__version__"] = found
        return found

    def __dir__() -> list[str]:
        return sorted({*_lazy_dir(), "__version__"})


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
