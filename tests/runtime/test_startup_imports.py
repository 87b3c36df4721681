"""What a node imports before it can serve: only what it needs (a restart pays for the rest).

Each check runs a fresh interpreter, since this one has imported everything long ago.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPTIONAL = ("cryptography", "importlib.metadata", "tomllib")


def modules_after(code: str, watched: tuple[str, ...] = OPTIONAL) -> set[str]:
    """Which of the ``watched`` modules are loaded in a fresh interpreter after ``code``."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        print(",".join(m for m in {watched!r} if m in sys.modules))
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return set(filter(None, done.stdout.strip().split(",")))


def test_a_node_without_secret_or_key_loads_no_cryptography_metadata_or_toml(
    tmp_path: Path,
) -> None:
    loaded = modules_after(
        f"""
        import asyncio
        import paxoskv
        from paxoskv.storage import Store
        from paxoskv.transport import FrameCodec

        FrameCodec("c")
        with Store.open({str(tmp_path)!r}) as store:
            store.append([b"record"])
            store.sync()
        with Store.open({str(tmp_path)!r}) as store:
            list(store.recovered_records())
        """
    )
    assert loaded == set()


def test_the_command_line_of_a_node_loads_no_metadata_until_version_is_asked() -> None:
    assert modules_after("import paxoskv.cli.main, paxoskv.cli.node_cmd") == set()


@pytest.mark.parametrize(
    ("code", "needed"),
    [
        ("import paxoskv; paxoskv.__version__", "importlib.metadata"),
        (
            "from click.testing import CliRunner; from paxoskv.cli import main; "
            "CliRunner().invoke(main, ['--version'])",
            "importlib.metadata",
        ),
        ("from paxoskv.transport import FrameCodec; FrameCodec('c', 's' * 16)", "cryptography"),
        (
            "from paxoskv.storage.cipher import RecordCipher; RecordCipher(bytes(32))",
            "cryptography",
        ),
    ],
)
def test_what_is_asked_for_is_still_loaded(code: str, needed: str) -> None:
    assert needed in modules_after(code)


REPLICA_ONLY = (
    "paxoskv.node",
    "paxoskv.runtime.replica",
    "paxoskv.runtime.serving",
    "paxoskv.paxos.engine",
    "paxoskv.storage.store",
)


def test_the_command_lines_client_loads_no_replica_engine_or_storage() -> None:
    """``paxos-kv get`` and the other client commands start in a fraction of a node's time."""
    code = """
        import paxoskv
        import paxoskv.cli.main
        from paxoskv import connect, Config, KVApi
        from paxoskv.remote import Client
        """
    assert modules_after(code, REPLICA_ONLY) == set()


NOT_FOR_A_READ = (
    *REPLICA_ONLY,
    "paxoskv.state.machine",  # the thin client sends commands and reads results, no state
    "paxoskv.state.dedup",
    "paxoskv.paxos.messages",  # the runtime's messages only (runtime.protocol)
    "paxoskv.runtime.membership",
    "paxoskv.runtime.identity",
    "paxoskv.transport.tipc",  # UDP is what it opens
    "paxoskv.transport.memory",
    "paxoskv.cli.node_cmd",  # the other commands' modules
    "paxoskv.cli.local_cluster",
    "paxoskv.cli.members_cmd",
    "paxoskv.cli.bench_cmd",
)


def test_paxos_kv_get_loads_its_command_and_the_thin_client_only() -> None:
    """What ``paxos-kv get`` imports before it sends its request: the command is looked up as
    click does, and the client made (not opened: no cluster here)."""
    code = """
        import click
        from paxoskv.cli import main
        command = main.get_command(click.Context(main), "get")
        assert command is not None and command.name == "get"
        import paxoskv
        paxoskv.connect(paxoskv.Config(durability="memory"))
        """
    assert modules_after(code, NOT_FOR_A_READ) == set()


def test_the_packages_names_still_import_on_first_use() -> None:
    code = "import paxoskv; paxoskv.Node; import paxoskv.paxos; paxoskv.paxos.Engine"
    assert modules_after(code, REPLICA_ONLY) == set(REPLICA_ONLY)
    code = (
        "import paxoskv.state, paxoskv.storage, paxoskv.transport; paxoskv.state.KVStateMachine; "
        "paxoskv.storage.CRC32C_IMPLEMENTATION; paxoskv.transport.TipcTransport"
    )
    watched = ("paxoskv.state.machine", "paxoskv.storage.crc", "paxoskv.transport.tipc")
    assert modules_after(code, watched) == set(watched)


def test_a_lazy_packages_submodules_are_still_its_attributes() -> None:
    """As when each package imported all its modules: ``paxoskv.transport.udp`` works after
    ``import paxoskv.transport``, and a name that is neither a name nor a module is refused."""
    code = """
        import paxoskv.paxos, paxoskv.state, paxoskv.transport
        assert paxoskv.transport.udp.UdpTransport is paxoskv.transport.UdpTransport
        assert paxoskv.state.machine.KVStateMachine is paxoskv.state.KVStateMachine
        assert paxoskv.paxos.engine.Engine is paxoskv.paxos.Engine
        for package in (paxoskv.state, paxoskv.transport):
            assert not hasattr(package, "no_such_module")
        """
    watched = ("paxoskv.transport.udp", "paxoskv.state.machine")
    assert modules_after(code, watched) == set(watched)


def test_a_node_and_its_sockets_load_no_ctypes_or_difflib() -> None:
    """Each was a millisecond or two of every start: the echo filter's buffer is an array, and
    difflib is for the hint to a misspelt setting only."""
    code = """
        import socket
        from paxoskv import Config, Node
        from paxoskv.runtime.loop import run
        from paxoskv.transport.sockio import drop_own_echo

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as group_socket:
            drop_own_echo(group_socket, ("127.0.0.1", 9))
        """
    assert modules_after(code, ("ctypes", "difflib")) == set()


@pytest.mark.parametrize(
    "package", ["paxoskv", "paxoskv.paxos", "paxoskv.state", "paxoskv.storage", "paxoskv.transport"]
)
def test_every_name_a_lazy_package_exports_resolves_and_nothing_else_is_invented(
    package: str,
) -> None:
    """A lazy package's table of homes is all it exports (plus the version and the errors
    module at the top): a wrong home would fail only when a user first asked for the name,
    and a type checker cannot see the table. Odd names stay plain AttributeErrors."""
    code = f"""
        import importlib
        package = importlib.import_module({package!r})
        exported = set(package.__all__)
        assert set(package._HOMES) == exported - {{"__version__", "errors"}}, exported
        for name in sorted(exported):
            assert getattr(package, name) is not None, name
        for odd in ("a.b", ".x", "", "no_such_name"):
            assert getattr(package, odd, "absent") == "absent", odd
        """
    assert modules_after(code, ()) == set()


# The dataclasses a node still builds at start, each a class an application is given or builds,
# so ``dataclasses.fields``, ``replace`` and ``asdict`` stay theirs to call (README, "Tutorial:
# the Python API"). Written and Deleted, a TxnResult's responses, come with it.
# Every internal value class is a ``Frozen`` or ``Record`` subclass (paxoskv/state/frozen.py):
# the standard library builds each dataclass's methods from source at import (mypyc's native
# dataclasses too), which was some 30 ms of a node's start when all 80 were dataclasses.
# (``FaultSettings`` is one too, but loads only when faults are set.)
DATACLASSES_AT_START = {
    "paxoskv.config.Config": "what an application configures a node with (paxoskv.Config)",
    "paxoskv.runtime.membership.Member": "what members() returns (paxoskv.Member)",
    "paxoskv.state.history.ChangeEvent": "what watch() yields (paxoskv.ChangeEvent)",
    "paxoskv.state.commands.Set": "a txn()'s step (paxoskv.Set)",
    "paxoskv.state.commands.Delete": "a txn()'s step (paxoskv.Delete)",
    "paxoskv.state.commands.Compare": "a txn()'s condition (paxoskv.Compare)",
    "paxoskv.state.commands.Txn": "an application's transaction command (README)",
    "paxoskv.state.results.KeyValue": "what get_entry() and items() return (paxoskv.KeyValue)",
    "paxoskv.state.results.TxnResult": "what txn() returns (README)",
    "paxoskv.state.results.Written": "a TxnResult's response to a Set (asdict walks into it)",
    "paxoskv.state.results.Deleted": "a TxnResult's response to a Delete (asdict walks into it)",
    "paxoskv.state.configuration.Configuration": "the membership an application reads (README)",
}


def test_a_node_builds_only_the_dataclasses_it_needs_at_start() -> None:
    code = """
        import dataclasses
        built = []
        process = dataclasses._process_class

        def recording(cls, *args, **kwargs):
            built.append(f"{cls.__module__}.{cls.__qualname__}")
            return process(cls, *args, **kwargs)

        dataclasses._process_class = recording
        from paxoskv import Config, Node
        from paxoskv.runtime.loop import run
        print(",".join(built))
        """
    probe = textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=60,
        check=True,
    )
    built = set(filter(None, done.stdout.strip().split(",")))
    assert built == set(DATACLASSES_AT_START), sorted(built ^ set(DATACLASSES_AT_START))


def test_a_node_without_faults_loads_no_fault_injection() -> None:
    """``paxoskv.transport.faults`` (the chaos wrapper and its settings, a millisecond of every
    start) loads only when a configuration sets faults: a real UDP node started and written to
    here, on loopback, never loads it."""
    code = f"""
        import asyncio
        from paxoskv import Config, Node

        async def main():
            config = Config(
                node_id="s1", durability="memory", bootstrap_expect=1, interface="127.0.0.1",
                cluster={unique_name()!r}, group="239.255.77.77:47777",
            )
            async with Node(config) as node:
                await node.set("k", "v")
                assert await node.get("k") == "v"

        asyncio.run(main())
        """
    assert modules_after(code, ("paxoskv.transport.faults",)) == set()


def test_faults_still_load_when_a_configuration_sets_them(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('[paxos-kv]\nnode_id = "n1"\n[paxos-kv.faults]\ndrop_rate = 0.1\n')
    code = f"""
        from paxoskv.config import load_config
        config = load_config(config_file={str(toml)!r}, environ={{}})
        assert config.faults is not None and config.faults.drop_rate == 0.1
        config.transport_settings(None)
        """
    assert modules_after(code, ("paxoskv.transport.faults",)) == {"paxoskv.transport.faults"}


def unique_name() -> str:
    import secrets

    return f"startup-{secrets.token_hex(4)}"
