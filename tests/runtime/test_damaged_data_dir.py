"""A data dir whose identity files are lost or damaged is refused, naming the file.

Found by the storage audit (twenty-first session): a lost ``node-id`` made the node a stranger
with a fresh id over another's journal, a lost ``genesis.json`` made it found a new cluster
over its old votes, a symlink that loops read as no file at all, and text that is not UTF-8
raised a traceback (exit 1, the code of a missing key).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from paxoskv import Node
from paxoskv.errors import ConfigurationError, StorageError
from paxoskv.runtime.identity import (
    GENESIS_FILE,
    NODE_ID_FILE,
    ROLE_FILE,
    node_identity,
    read_genesis,
)
from tests.runtime.cluster import MemoryCluster


async def _a_node_that_wrote(tmp_path: Path) -> Path:
    """A single node's data dir with a journal (stopped in good order)."""
    cluster = MemoryCluster(tmp_path)
    node = await cluster.start("n1", bootstrap_expect=1)
    await node.wait_ready(5)
    await node.set("k", 1)
    await cluster.close()
    return tmp_path / "n1"


async def _start(data_dir: Path, **overrides: object) -> None:
    cluster = MemoryCluster(data_dir.parent)
    config = cluster.config(data_dir.name, bootstrap_expect=1, **overrides)
    node = Node(config, transport=cluster.network.attach(data_dir.name))
    try:
        await node.start()
    finally:
        await node.close()


async def test_a_journal_without_its_node_id_file_is_refused(tmp_path: Path) -> None:
    data_dir = await _a_node_that_wrote(tmp_path)
    (data_dir / NODE_ID_FILE).unlink()
    for wanted in (None, "n1"):
        with pytest.raises(ConfigurationError, match=f"no {NODE_ID_FILE} file"):
            node_identity(data_dir, wanted)
    assert not (data_dir / NODE_ID_FILE).exists()  # nothing written over it


async def test_a_journal_without_its_genesis_is_refused(tmp_path: Path) -> None:
    data_dir = await _a_node_that_wrote(tmp_path)
    (data_dir / GENESIS_FILE).unlink()
    with pytest.raises(ConfigurationError, match=f"no {GENESIS_FILE} file"):
        await _start(data_dir)
    assert not (data_dir / GENESIS_FILE).exists()  # no cluster founded anew


def test_a_fresh_data_dir_is_still_given_an_id(tmp_path: Path) -> None:
    assert node_identity(tmp_path / "new", "n9") == "n9"
    assert (tmp_path / "new" / NODE_ID_FILE).read_text() == "n9\n"


@pytest.mark.parametrize("name", [NODE_ID_FILE, ROLE_FILE, GENESIS_FILE])
async def test_an_identity_file_that_is_not_utf8_is_named(tmp_path: Path, name: str) -> None:
    data_dir = await _a_node_that_wrote(tmp_path)
    (data_dir / name).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(
        ConfigurationError, match=re.escape(f"{data_dir / name} is damaged (not UTF-8")
    ):
        await _start(data_dir)


@pytest.mark.parametrize("name", [NODE_ID_FILE, GENESIS_FILE])
async def test_an_identity_file_that_is_a_symlink_loop_is_named(tmp_path: Path, name: str) -> None:
    data_dir = await _a_node_that_wrote(tmp_path)
    (data_dir / name).unlink()
    os.symlink(name, data_dir / name)  # points at itself
    with pytest.raises(ConfigurationError, match=re.escape(f"cannot read {data_dir / name}")):
        await _start(data_dir)


async def test_an_empty_node_id_file_is_named(tmp_path: Path) -> None:
    data_dir = await _a_node_that_wrote(tmp_path)
    (data_dir / NODE_ID_FILE).write_text("\n")
    with pytest.raises(ConfigurationError, match=re.escape(f"{data_dir / NODE_ID_FILE} is empty")):
        node_identity(data_dir, None)


@pytest.mark.parametrize("voters", ['"n1"', "[]", '[""]', "[1]"])
def test_genesis_voters_that_are_no_list_of_ids_are_damaged(tmp_path: Path, voters: str) -> None:
    """``"voters": "n1"`` was taken for the voters n and 1, and the node waited for good."""
    (tmp_path / GENESIS_FILE).write_text(f'{{"voters": {voters}, "formation": "f"}}\n')
    with pytest.raises(ConfigurationError, match="is damaged"):
        read_genesis(tmp_path, None)


def test_a_data_dir_that_is_a_symlink_loop_is_a_usage_error(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(ConfigurationError, match=r"cannot use .* as a data dir"):
        node_identity(tmp_path / "loop" / "sub", "n1")
    os.symlink("other", tmp_path / "looped")
    os.symlink("looped", tmp_path / "other")
    with pytest.raises(ConfigurationError, match="Too many levels of symbolic links"):
        node_identity(tmp_path / "looped", "n1")  # (mkdir said "File exists")


def test_an_identity_file_that_cannot_be_written_is_named_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a file size limit it said only "File too large", and left ``node-id.tmp``."""

    def too_large(descriptor: int) -> None:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "fsync", too_large)
    with pytest.raises(StorageError) as raised:
        node_identity(tmp_path / "d", "n1")
    assert str(tmp_path / "d" / NODE_ID_FILE) in str(raised.value)
    assert "Free disk space (or raise the quota or file size limit)" in str(raised.value)
    assert os.listdir(tmp_path / "d") == []
