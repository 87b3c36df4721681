"""How the build under test refuses a badly typed call to the state machine's own API.

In the pure build every check is the code's own and raises a typed error. In the compiled
build (``make compile``) a compiled function checks its annotated argument types on entry, so
a wrong type is refused there with a TypeError before the code's check runs, and an ``int``
parameter takes ``True`` as ``1``. Both refuse before anything changes. What an application
hands in (commands, keys of reads, configuration) is checked by interpreted code or by
functions that take ``object``, and gets the same typed error in both builds.
"""

from __future__ import annotations

from paxoskv.compiled import compiled_core

COMPILED = compiled_core()


def refused(error: type[Exception]) -> tuple[type[Exception], ...]:
    """The errors a badly typed call may raise in this build: ``error``, or TypeError too."""
    return (error, TypeError) if COMPILED else (error,)
