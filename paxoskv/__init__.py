"""paxos-kv: a Paxos-replicated key-value store kept in RAM and persisted by prevalence.

The public face of the package. Layers below it (``paxos``, ``state``, ``storage``,
``transport``) are importable for those who embed or test them, but this module is what an
application is meant to touch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paxos-kv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
