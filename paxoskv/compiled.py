"""Which modules the compiled build holds, and which build this process runs.

The sans-IO core (``paxoskv/paxos``, ``paxoskv/state``) is plain, fully typed Python that mypyc
compiles to C extension modules: the same source, faster (README, "The compiled core").
Both builds give the same results. A benchmark figure means little without saying which ran,
so the benchmarks and ``paxos-kv status`` report it.

This module imports nothing of paxoskv at load time: ``setup.py`` reads :func:`core_sources`
from it before the package's dependencies are installed.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# Whole packages (every module but ``__init__``, which imports its names lazily), then single
# modules of packages that are otherwise left interpreted.
CORE_PACKAGES = ("paxos", "state")
CORE_MODULES: tuple[str, ...] = (
    # The transport's framing and per-frame paths: pure, no sockets (endpoint.py, which holds
    # the sockets and is subclassed by each transport, stays interpreted and calls them).
    "transport/frames.py",
    "transport/replay.py",
    "transport/straight.py",
)
# Left interpreted: the commands and the configuration are what an application builds itself
# (``paxoskv.Set``, ``Compare``, ``Txn``, ``Configuration``) and they check what they are given:
# a list where a tuple goes, any iterable of ids, ``True`` for a lease id must each give the
# error the pure build gives. Compiled, an annotated ``int`` field turns ``True`` into ``1`` and
# a wrong type raises a bare TypeError before the check runs. The replicas' hot path does not
# build them (batches are applied from their wire form).
# ``state/frozen_plain.py`` is the base of the commands' classes, which are interpreted: a compiled
# class with a ``__setattr__`` of its own cannot have interpreted subclasses.
INTERPRETED = ("state/commands.py", "state/configuration.py", "state/frozen_plain.py")


def core_sources(package_dir: Path) -> list[Path]:
    """The ``.py`` files of the compiled build, under the ``paxoskv`` directory given."""
    found = [
        path
        for package in CORE_PACKAGES
        for path in (package_dir / package).glob("*.py")
        if path.name != "__init__.py" and f"{package}/{path.name}" not in INTERPRETED
    ]
    return sorted([*found, *(package_dir / module for module in CORE_MODULES)])


def compiled_core() -> bool:
    """True when the engine module was loaded from a C extension (``make compile``)."""
    from paxoskv.paxos import engine

    return (engine.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))


def build_name() -> str:
    """``compiled`` or ``pure Python``, for output meant to be read."""
    return "compiled" if compiled_core() else "pure Python"
