"""A node's identity and its cluster's genesis, kept in the data dir beside the journal.

A restarted node must rejoin as itself (its promises and accepts are its own), so its id is
written once and read back. The genesis voter set is what every replica's state machine starts
from; a node that joins later learns it from a member's hello and keeps it too, so replaying
its journal after a restart starts from the same first state as everyone else's.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from paxoskv.errors import ConfigurationError

NODE_ID_FILE = "node-id"
GENESIS_FILE = "genesis.json"


def node_identity(data_dir: Path | None, wanted: str | None) -> str:
    """The id kept in ``data_dir``, or ``wanted``, or a fresh random one (then kept)."""
    if data_dir is None:
        return wanted or _fresh_id()
    path = data_dir / NODE_ID_FILE
    if path.exists():
        kept = path.read_text().strip()
        if wanted is not None and wanted != kept:
            raise ConfigurationError(
                f"data dir {data_dir} belongs to node {kept!r}, not {wanted!r}: drop --node-id "
                "or choose another --data-dir"
            )
        return kept
    node_id = wanted or _fresh_id()
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_durably(path, node_id + "\n")
    return node_id


def load_genesis(data_dir: Path | None) -> tuple[str, ...] | None:
    if data_dir is None or not (data_dir / GENESIS_FILE).exists():
        return None
    try:
        voters = json.loads((data_dir / GENESIS_FILE).read_text())["voters"]
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"{data_dir / GENESIS_FILE} is damaged; move the data dir aside and rejoin the cluster"
        ) from None
    return tuple(voters)


def save_genesis(data_dir: Path | None, voters: tuple[str, ...]) -> None:
    if data_dir is not None:
        _write_durably(data_dir / GENESIS_FILE, json.dumps({"voters": list(voters)}) + "\n")


def _fresh_id() -> str:
    return "n-" + secrets.token_hex(4)


def _write_durably(path: Path, text: str) -> None:
    import os

    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
