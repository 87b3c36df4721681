"""The compiled core is all or nothing, and never older than its source.

Python loads a C extension in preference to the ``.py`` beside it, so a build left over from
before an edit would run the old code while the tests read the new: ``make test`` rebuilds
first, and this test stops anyone who ran pytest straight after an edit.
"""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import paxoskv
from paxoskv.compiled import build_name, compiled_core, core_sources

PACKAGE = Path(paxoskv.__file__).parent
CORE = core_sources(PACKAGE)


def _extension_of(source: Path) -> Path | None:
    for suffix in EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def test_the_core_is_compiled_whole_or_not_at_all() -> None:
    built = {source.name: _extension_of(source) is not None for source in CORE}
    assert len(set(built.values())) == 1, f"a partial build (run `make compile`): {built}"


def test_modules_left_interpreted_have_no_build() -> None:
    leftovers = [
        source.name
        for source in PACKAGE.rglob("*.py")
        if source not in CORE and _extension_of(source) is not None
    ]
    assert not leftovers, f"modules not in the compiled list have a build: {leftovers}"


def test_no_source_is_newer_than_the_build() -> None:
    """The group library holds every compiled module's code (the per-module extensions are
    shims that load it, copied unchanged with their old times), so it is what must be newer
    than each source."""
    libraries = sorted(PACKAGE.parent.glob("paxoskv_core__mypyc*"))
    if _extension_of(CORE[0]) is None:
        assert not libraries, f"a core library without the modules: {libraries}"
        return
    assert len(libraries) == 1, libraries
    built = libraries[0].stat().st_mtime
    stale = [source.name for source in CORE if source.stat().st_mtime > built]
    assert not stale, f"sources edited since the build (run `make compile`): {stale}"


def test_the_process_runs_the_build_that_lies_on_disk() -> None:
    on_disk = _extension_of(CORE[0]) is not None
    assert compiled_core() is on_disk
    assert build_name() == ("compiled" if on_disk else "pure Python")
    for source in CORE:
        module = importlib.import_module(
            "paxoskv." + ".".join(source.relative_to(PACKAGE).with_suffix("").parts)
        )
        assert (module.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES)) is on_disk


def test_the_compiled_build_tags_frames_in_c_wherever_openssl_headers_are_found() -> None:
    """setup.py builds the tag module as optional (no OpenSSL headers, no module, and frames
    are tagged through ``cryptography``); where the headers are, a compiled build without it
    would quietly run the slower way, so that is a failure; so is a tag module beside a
    pure build, or one older than its source."""
    from paxoskv.transport.frames import native_keyed

    source = PACKAGE / "transport" / "_hmac_sha256.c"
    built = [PACKAGE / "transport" / f"_hmac_sha256{suffix}" for suffix in EXTENSION_SUFFIXES]
    built = [path for path in built if path.exists()]
    if _extension_of(CORE[0]) is None:
        assert not built, f"a tag module without the compiled core: {built}"
        assert native_keyed() is None
        return
    headers = [Path("/usr/include/openssl/sha.h"), Path("/usr/local/include/openssl/sha.h")]
    if not built and not any(path.exists() for path in headers):
        pytest.skip("no OpenSSL headers here (libssl-dev): frames are tagged by cryptography")
    assert built, "the compiled build has no tag module: `make pure compile`, build/compile.log"
    assert native_keyed() is not None
    assert built[0].stat().st_mtime >= source.stat().st_mtime, "run `make compile`"
