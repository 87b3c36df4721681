"""Package attributes imported on first use (PEP 562).

A package's ``__init__`` that imports everything it re-exports makes every import of one of
its modules pay for all the others: the command line's thin client, which needs the Paxos
message codec only, paid for the engine, and through the top-level package for the replica
and the storage too. Each starts in a fraction of that when its names are looked up lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A ``__getattr__`` and ``__dir__`` for ``package``: each name in ``homes`` is imported
    from the module named there the first time it is asked for, then kept in ``namespace``
    (the package's globals) so later lookups never come back here. A home written
    ``module:attribute`` gives a name its module spells differently (``from m import a as b``).

    A submodule is an attribute too, imported when asked for (``paxoskv.state.machine`` after
    ``import paxoskv.state``), as it was when the package imported all of them itself."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            if name.isidentifier() and not name.startswith("__"):  # not "a.b", "", dunders
                submodule = f"{package}.{name}"
                try:
                    return import_module(submodule)  # which sets it in ``namespace``
                except ModuleNotFoundError as error:
                    if error.name != submodule:
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = home.partition(":")
        found = getattr(import_module(module), attribute or name)
        namespace[name] = found
        return found

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
