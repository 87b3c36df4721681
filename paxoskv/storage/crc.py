"""CRC32C (Castagnoli) for framing records and headers on disk.

Why CRC32C and not zlib's CRC32: it has better error detection for the short bursts that disks
and torn writes produce, and it runs in hardware (SSE4.2, ARMv8) through ``google-crc32c``.
That wheel is the preferred source; when it is missing we fall back to the ``crc32c`` package
and then to a table-driven pure-Python version, which is slow but gives the same numbers, so a
data dir written on one machine reads on any other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

__all__ = ["IMPLEMENTATION", "crc32c", "crc32c_extend", "crc32c_python"]

_POLYNOMIAL_REFLECTED = 0x82F63B78


@cache
def _table() -> tuple[int, ...]:
    """The lookup table, built the first time the pure-Python version runs: a node with the
    ``google-crc32c`` wheel never needs it, and building it (2,048 steps of Python) was part of
    every node's start."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


Data = bytes | bytearray | memoryview


def crc32c_python(data: Data, crc: int = 0) -> int:
    """The reference implementation: one table lookup per byte; ``crc`` continues a run."""
    crc ^= 0xFFFFFFFF
    table = _table()
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pick() -> tuple[Callable[[Data], int], Callable[[int, Data], int], str]:
    try:
        import google_crc32c

        if google_crc32c.implementation == "c":
            return google_crc32c.value, google_crc32c.extend, "google-crc32c"
    except ImportError:
        pass
    try:
        import crc32c as crc32c_package

        def extend(crc: int, data: Data) -> int:
            return int(crc32c_package.crc32c(data, crc))

        return crc32c_package.crc32c, extend, "crc32c"
    except ImportError:
        pass
    return crc32c_python, lambda crc, data: crc32c_python(data, crc), "python"


crc32c, crc32c_extend, IMPLEMENTATION = _pick()
