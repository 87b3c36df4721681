"""Build hook for the compiled core (everything else is in pyproject.toml).

The consensus engine (``paxoskv/paxos``) and the state machine (``paxoskv/state``) are plain,
fully typed Python with no I/O, which is what mypyc compiles to C extension modules: the same
source, run faster (README, "The compiled core"). ``PAXOSKV_COMPILE=1 pip install .`` (or ``make compile`` in a
checkout) builds them, with mypy in the build environment and a C compiler on the machine;
without it the package installs as pure Python and behaves the same, only slower.
``paxoskv.compiled.build_name()`` tells which one a process runs. The same build compiles the
transport's HMAC tag (``paxoskv/transport/_hmac_sha256.c``, hand-written: see its comment),
where OpenSSL's headers are on the machine.
"""

import os
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

ROOT = Path(__file__).parent


def core_sources() -> list[str]:
    """The list kept in paxoskv/compiled.py, read without importing the package."""
    spec = spec_from_file_location("_paxoskv_compiled", ROOT / "paxoskv" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return [str(path.relative_to(ROOT)) for path in module.core_sources(ROOT / "paxoskv")]


NATIVE_SOURCES = ["paxoskv/transport/_hmac_sha256.c"]

if __name__ == "__main__" and sys.argv[1:] == ["--core-sources"]:
    print(" ".join(core_sources() + NATIVE_SOURCES))  # for the Makefile: what a rebuild needs
elif os.environ.get("PAXOSKV_COMPILE") == "1":
    from mypyc.build import mypycify
    from setuptools import setup

    from setuptools import Extension

    # One group, in several C files so that ``build_ext --parallel`` compiles them side by side;
    # and the frames' HMAC tag, which needs OpenSSL's headers and libcrypto: optional, so a
    # machine without them builds the rest and tags frames through ``cryptography``.
    tag = Extension(
        "paxoskv.transport._hmac_sha256",
        sources=NATIVE_SOURCES,
        libraries=["crypto"],
        optional=True,
    )
    setup(
        ext_modules=[
            *mypycify(core_sources(), opt_level="3", multi_file=True, group_name="paxoskv_core"),
            tag,
        ]
    )
else:
    from setuptools import setup

    setup()
