"""Storage: the prevalence layer every node persists to.

It keeps opaque records in a checksummed, segmented journal and opaque state blobs in
snapshots, and knows nothing of Paxos. :class:`Store` is the whole interface the node
runtime needs; :class:`GroupCommitter` runs its syncs on a writer thread; the ``Disk``
implementations are how the simulator and the tests put the real recovery code under
simulated crashes and injected I/O errors.
"""

from typing import TYPE_CHECKING

from paxoskv.lazy import lazy_attributes

if TYPE_CHECKING:
    from paxoskv.storage.cipher import load_key_file
    from paxoskv.storage.crc import IMPLEMENTATION as CRC32C_IMPLEMENTATION
    from paxoskv.storage.crc import crc32c
    from paxoskv.storage.disk import Disk, NoSyncDisk, OsDisk
    from paxoskv.storage.faults import DiskStopped, FaultyDisk
    from paxoskv.storage.group_commit import LAZY_SYNC_S, GroupCommitter
    from paxoskv.storage.memory_disk import MemoryDisk
    from paxoskv.storage.snapshots import SnapshotStream
    from paxoskv.storage.store import (
        DEFAULT_KEEP_JOURNAL_BYTES,
        DEFAULT_KEEP_JOURNAL_RECORDS,
        DEFAULT_KEEP_SNAPSHOTS,
        DEFAULT_SEGMENT_SIZE_BYTES,
        Durability,
        Store,
    )

# Imported on first use (paxoskv.lazy), as paxoskv.paxos's are: a module that needs one of
# these pays for its own module only, not for every module of the package. The imports above
# are for type checkers (the package ships py.typed).
_HOMES = {
    "load_key_file": "paxoskv.storage.cipher",
    "CRC32C_IMPLEMENTATION": "paxoskv.storage.crc:IMPLEMENTATION",
    "crc32c": "paxoskv.storage.crc",
    **dict.fromkeys(("Disk", "NoSyncDisk", "OsDisk"), "paxoskv.storage.disk"),
    **dict.fromkeys(("DiskStopped", "FaultyDisk"), "paxoskv.storage.faults"),
    **dict.fromkeys(("LAZY_SYNC_S", "GroupCommitter"), "paxoskv.storage.group_commit"),
    "MemoryDisk": "paxoskv.storage.memory_disk",
    "SnapshotStream": "paxoskv.storage.snapshots",
    **dict.fromkeys(
        (
            "DEFAULT_KEEP_JOURNAL_BYTES",
            "DEFAULT_KEEP_JOURNAL_RECORDS",
            "DEFAULT_KEEP_SNAPSHOTS",
            "DEFAULT_SEGMENT_SIZE_BYTES",
            "Durability",
            "Store",
        ),
        "paxoskv.storage.store",
    ),
}
if not TYPE_CHECKING:  # so that a type checker still refuses a name that is not here
    __getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals())

__all__ = [
    "CRC32C_IMPLEMENTATION",
    "DEFAULT_KEEP_JOURNAL_BYTES",
    "DEFAULT_KEEP_JOURNAL_RECORDS",
    "DEFAULT_KEEP_SNAPSHOTS",
    "DEFAULT_SEGMENT_SIZE_BYTES",
    "LAZY_SYNC_S",
    "Disk",
    "DiskStopped",
    "Durability",
    "FaultyDisk",
    "GroupCommitter",
    "MemoryDisk",
    "NoSyncDisk",
    "OsDisk",
    "SnapshotStream",
    "Store",
    "crc32c",
    "load_key_file",
]
