"""A node's (or a client's) settings: one frozen object, validated when it is made.

Settings come from flags, ``PAXOS_KV_*`` environment variables or a TOML file, in that order
of precedence (:func:`load_config` merges them); whatever the source, a bad value fails here
with a message naming the setting, never later as an ``OSError`` from deep inside a socket.
A client finds its cluster by the group (or peers), interface, cluster name and secret.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paxoskv.errors import ConfigurationError
from paxoskv.transport.settings import (
    DEFAULT_GROUP,
    DEFAULT_GROUP_PORT,
    TransportSettings,
    UdpSettings,
    parse_host_port,
)

if TYPE_CHECKING:  # imported when faults are set (chaos runs), not at every start
    from paxoskv.transport.faults import FaultSettings

Durability = Literal["durable", "os", "memory"]
ENV_PREFIX = "PAXOS_KV_"


COMMIT_DELAY_S = 0.002
"""How long a leader's lone commit point may wait to ride on the next accept (the engine's
``commit_delay_s``, which the runtime gives it from here): a heartbeat must come less often."""


@dataclass(frozen=True)
class Config:
    """Everything ``paxoskv.Node`` and ``paxoskv.connect`` need.

    A node with ``data_dir=None`` keeps nothing on disk (its ``durability`` must then be
    ``"memory"``); a client needs no data dir at all.
    """

    data_dir: Path | None = None
    node_id: str | None = None
    cluster: str = "paxos-kv"
    scope: str = "multicast"
    group: str = f"{DEFAULT_GROUP}:{DEFAULT_GROUP_PORT}"
    interface: str = "127.0.0.1"
    port: int = 0
    peers: tuple[str, ...] = ()
    secret_file: Path | None = None
    secret: bytes | None = field(default=None, repr=False)
    encrypt: bool = False
    learner: bool = False
    join: bool = False
    bootstrap_expect: int | None = None
    durability: Durability = "durable"
    encryption_key_file: Path | None = None
    request_timeout_s: float = 5.0
    heartbeat_interval_s: float = 0.05
    election_timeout_s: float = 0.5
    snapshot_every_commands: int = 100_000  # (or the state's keys, if more)
    snapshot_every_bytes: int = 64 << 20  # (or the state's packed size, if more)
    log_retention_slots: int = 2_000  # chosen slots kept in memory for replicas a little behind
    log_retention_bytes: int = 8 << 20  # and at most this many bytes of them
    history_limit_events: int = 10_000  # change events kept for watchers resuming
    history_limit_bytes: int = 64 << 20  # and the most bytes of values and keys they hold
    hello_interval_s: float = 0.25
    suspect_after_s: float = 1.0
    down_after_s: float = 3.0
    auto_remove_down_after_s: float | None = None
    min_voters: int = 3
    faults: FaultSettings | None = None  # seeded fault injection on real sockets (chaos runs)
    event_loop: str = (
        "auto"  # what `paxos-kv node` and a blocking handle's own loop run on: auto (uvloop if
        # installed), asyncio, uvloop
    )

    def __new__(cls, *args: Any, **settings: Any) -> Config:
        # Before the generated __init__, whose TypeError for a misspelt name says neither
        # which settings there are nor that this is a setting: the same mistake in a TOML
        # file or an environment variable is a ConfigurationError with a suggestion.
        if args:
            raise ConfigurationError(
                "Config takes its settings by name (Config(node_id=..., data_dir=...)), "
                f"not by position: {len(args)} given"
            )
        for name in settings:
            if name not in _FIELDS:
                raise _unknown_setting(name)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        # Types first: a "5" where a number belongs would otherwise surface as a TypeError
        # from a comparison below, or from a socket call much later.
        for name, kind in _KINDS.items():
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, _typed(kind, value))
            except _WrongType as wrong:
                raise ConfigurationError(
                    f"setting {name} must be {wrong.expected}, not {_shown(name, value)} "
                    f"({type(value).__name__})"
                ) from None
        if self.durability not in ("durable", "os", "memory"):
            raise ConfigurationError(
                f"durability {self.durability!r} is not one of durable, os, memory"
            )
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigurationError(
                f"event_loop {self.event_loop!r} is not one of auto, asyncio, uvloop"
            )
        if self.bootstrap_expect is not None and self.bootstrap_expect < 1:
            raise ConfigurationError("bootstrap_expect must be at least 1")
        if self.join and self.bootstrap_expect is not None:
            raise ConfigurationError(
                "join and bootstrap_expect (--join, --bootstrap-expect) contradict each other: "
                "a node either forms a new cluster with its first peers or joins a running one; "
                "give one of them"
            )
        if self.learner and self.bootstrap_expect is not None:
            raise ConfigurationError("a learner cannot bootstrap a cluster; start it with --join")
        if self.request_timeout_s <= 0:
            raise ConfigurationError("request_timeout_s must be positive")
        self._check_timing()
        self._check_failure_detector()
        if self.min_voters < 1:
            raise ConfigurationError("min_voters must be at least 1")
        for name in ("snapshot_every_commands", "snapshot_every_bytes"):
            if getattr(self, name) < 1:
                raise ConfigurationError(
                    f"{name} must be at least 1, not {getattr(self, name)!r}; it is how often "
                    "a node writes its whole state as a snapshot"
                )
        for name in ("log_retention_slots", "log_retention_bytes"):
            if getattr(self, name) < 0:
                raise ConfigurationError(
                    f"{name} must be at least 0, not {getattr(self, name)!r}; it is how much "
                    "of the log a node keeps in memory for replicas a little behind"
                )
        for name in ("history_limit_events", "history_limit_bytes"):
            limit = getattr(self, name)
            if type(limit) is not int or limit < 1:
                raise ConfigurationError(
                    f"{name} must be a positive whole number, not {limit!r}; it bounds the "
                    "change history watchers resume from (a larger one lets them resume from "
                    "further back, at the cost of memory on every node)"
                )
        if self.node_id is not None:
            check_node_id(self.node_id)
        try:
            self.cluster.encode("utf-8")  # (its digest names the cluster in every frame)
        except UnicodeEncodeError:
            raise ConfigurationError(
                f"cluster name {self.cluster!r} is not valid text: it holds bytes that are not "
                "UTF-8 (from the command line or the environment); name the cluster in UTF-8"
            ) from None
        self.transport_settings(node_incarnation=None)  # validates scope, group, peers, secret

    def _check_failure_detector(self) -> None:
        """Hellos, suspicion, down and removal must come in that order: a hello interval of
        2 s with ``down_after_s`` 0.6 marked healthy peers down between hellos, and an
        ``auto_remove_down_after_s`` of 0.5 then removed two healthy voters (API audit,
        twenty-second session)."""
        hello = self.hello_interval_s
        if not 0 < self.suspect_after_s < self.down_after_s:
            raise ConfigurationError(
                f"need 0 < suspect_after_s < down_after_s, not {self.suspect_after_s:g} and "
                f"{self.down_after_s:g}: a silent peer is first suspect, then down"
            )
        if self.suspect_after_s <= hello:
            raise ConfigurationError(
                f"suspect_after_s ({self.suspect_after_s:g}) must be more than "
                f"hello_interval_s ({hello:g}): a peer that says hello on time would be "
                "suspected between its hellos (three hellos or more per suspect_after_s "
                "lets a lost one pass)"
            )
        if self.down_after_s < 2 * hello:
            raise ConfigurationError(
                f"down_after_s ({self.down_after_s:g}) must be at least twice "
                f"hello_interval_s ({hello:g}): one lost hello must not make a peer down"
            )
        remove_after = self.auto_remove_down_after_s
        if remove_after is not None and remove_after < self.down_after_s:
            raise ConfigurationError(
                f"auto_remove_down_after_s ({remove_after:g}) must be at least down_after_s "
                f"({self.down_after_s:g}): only a voter that is down may be removed (leave "
                "it unset to remove voters by hand)"
            )

    def _check_timing(self) -> None:
        """The timers a node runs on, checked here rather than where the engine or the hello
        loop meets them: a heartbeat of 0 stopped ``paxos-kv node`` with a ValueError
        traceback from the engine, and a hello interval of 0 busy-looped, sending some
        70,000 hellos a second (bad-input audit, twentieth session)."""
        for name in ("heartbeat_interval_s", "election_timeout_s", "hello_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    f"{name} must be positive, not {getattr(self, name)!r} (seconds)"
                )
        if self.heartbeat_interval_s <= COMMIT_DELAY_S:
            raise ConfigurationError(
                f"heartbeat_interval_s must be more than {COMMIT_DELAY_S * 1000:g} ms (the "
                f"longest a lone commit point waits to ride on a write), not "
                f"{self.heartbeat_interval_s!r}"
            )
        if self.heartbeat_interval_s * 3 > self.election_timeout_s * (1 + 1e-9):  # (0.1 * 3)
            raise ConfigurationError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s:g}) must be at most a third "
                f"of election_timeout_s ({self.election_timeout_s:g}): a leader must be heard "
                "at least three times before followers give up on it"
            )
        if self.auto_remove_down_after_s is not None and self.auto_remove_down_after_s <= 0:
            raise ConfigurationError(
                "auto_remove_down_after_s must be positive, or unset to never remove a node "
                "that is down"
            )

    def check_node_storage(self) -> None:
        """A replica (unlike a client) needs somewhere to persist, unless told not to."""
        if self.data_dir is None and self.durability != "memory":
            raise ConfigurationError(
                "a node needs --data-dir to persist its state; or choose --durability memory"
            )
        if self.data_dir is not None and self.durability == "memory":
            # It used to start empty over the dir's journal, answer as the voter its identity
            # files said it was (with none of its votes), and write nothing there.
            raise ConfigurationError(
                f"--durability memory keeps nothing on disk, so it cannot use the data dir "
                f"{self.data_dir}: drop it (--data-dir, PAXOS_KV_DATA_DIR or a config file's "
                "data_dir), or choose --durability durable or os"
            )

    def cluster_secret(self) -> bytes | None:
        """The secret, from ``secret`` or read from ``secret_file``."""
        if self.secret is not None:
            return self.secret
        if self.secret_file is None:
            return None
        try:
            text = Path(self.secret_file).read_bytes().strip()
        except OSError as error:
            raise ConfigurationError(
                f"cannot read the secret file {self.secret_file}: {error.strerror}"
            ) from None
        if not text:
            raise ConfigurationError(f"the secret file {self.secret_file} is empty")
        return text

    def reach(self) -> str:
        """How this config reaches its cluster, for messages: only what its scope uses (a
        unicast or broadcast user has no use for the default multicast group)."""
        if self.scope == "unicast":
            peers = ", ".join(self.peers) or "none (others list this node's --port)"
            return f"by unicast from {self.interface} to peers {peers}"
        port = self.group.rpartition(":")[2]
        if self.scope == "broadcast":
            return f"by broadcast on {self.interface} to port {port}"
        return f"on multicast group {self.group} via {self.interface}"

    def reach_flags(self) -> str:
        """The flags that decide :meth:`reach`, to check against the nodes' own."""
        where = {"unicast": "--peer", "broadcast": "the port of --group"}
        return f"{where.get(self.scope, '--group')}, --interface, --cluster and --secret-file"

    def transport_settings(self, node_incarnation: int | None) -> TransportSettings:
        group_host, group_port = _parse_group(self.group)
        udp = UdpSettings(
            scope=self.scope,  # type: ignore[arg-type]  # UdpSettings checks and converts it
            interface=self.interface,
            group=group_host,
            group_port=group_port,
            port=self.port,
            peers=self.peers,
        )
        return TransportSettings(
            cluster=self.cluster,
            secret=self.cluster_secret(),
            encrypt=self.encrypt,
            incarnation=node_incarnation,
            udp=udp,
            faults=self.faults,
        )


def _parse_group(group: str) -> tuple[str, int]:
    """The group's address and port, or an error that speaks of a group, not a peer."""
    example = f"such as {DEFAULT_GROUP}:{DEFAULT_GROUP_PORT}"
    if ":" not in group:
        raise ConfigurationError(
            f"group {group!r} has no port: give the group as ADDRESS:PORT, {example}"
        )
    try:
        return parse_host_port(group)
    except ConfigurationError:
        raise ConfigurationError(
            f"group {group!r} is not an IPv4 ADDRESS:PORT, {example}"
        ) from None


def check_node_id(node_id: str) -> None:
    """ConfigurationError unless ``node_id`` is an id a node can have."""
    if not node_id or len(node_id) > 64 or not node_id.isprintable() or " " in node_id:
        raise ConfigurationError(
            f"node id {node_id!r} must be 1-64 printable characters without spaces"
        )


_FIELDS = {f.name: f for f in fields(Config)}
# Each field's type without its "| None", and whether None is allowed.
_KINDS: dict[str, tuple[str, bool]] = {
    name: (str(f.type).removesuffix(" | None"), str(f.type).endswith(" | None"))
    for name, f in _FIELDS.items()
}
_EXPECTED = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a finite number",
    "str": "a string",
    "Durability": "a string",
    "Path": "a path (a string)",
    "bytes": "a string of bytes",
    "tuple[str, ...]": "a list of strings",
    "FaultSettings": "a table of fault settings ([paxos-kv.faults] in the TOML file)",
}


class _WrongType(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


def _typed(kind: tuple[str, bool], value: object) -> object:
    """``value`` as the field's type (a str path as a Path, a list as a tuple), or _WrongType."""
    base, optional = kind
    if value is None and optional:
        return None
    if base == "bool" and type(value) is bool:
        return value
    if base == "int" and type(value) is int:
        return value
    if base == "float" and type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    if base in ("str", "Durability") and isinstance(value, str):
        return value
    if base == "Path" and isinstance(value, str | os.PathLike):
        return Path(value)
    if base == "bytes" and isinstance(value, bytes):
        return value
    if (
        base == "tuple[str, ...]"
        and isinstance(value, list | tuple)
        and all(isinstance(item, str) for item in value)
    ):
        return tuple(value)
    if base == "FaultSettings":
        from paxoskv.transport.faults import FaultSettings

        if isinstance(value, FaultSettings):
            return value
    expected = _EXPECTED[base]
    raise _WrongType(f"{expected} or unset" if optional else expected)


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _from_text(name: str, text: str) -> object:
    """An environment variable's text as the field's type (ValueError if it is not one)."""
    base = _KINDS[name][0]
    if base == "bool":
        lowered = text.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ValueError(text)
        return lowered in _TRUE
    if base == "int":
        return int(text)
    if base == "float":
        return float(text)
    if base == "tuple[str, ...]":
        return tuple(text.split(","))
    if base == "bytes":
        return text.encode()
    if base == "FaultSettings":
        raise ValueError(text)
    return text


def _coerce(name: str, raw: object, source: str) -> Any:
    """Turn an environment string or a TOML value into the field's type, or say which
    setting, from which source, wanted what."""
    kind = _KINDS[name]
    try:
        if source.startswith("$"):
            assert isinstance(raw, str)
            raw = _from_text(name, raw)
        elif name == "faults" and isinstance(raw, dict):  # a [paxos-kv.faults] table
            return _faults(raw, source)
        elif name == "secret" and isinstance(raw, str):
            raw = raw.encode()
        return _typed(kind, raw)
    except ConfigurationError:
        raise
    except (_WrongType, ValueError):
        expected = _EXPECTED[kind[0]]
        raise ConfigurationError(
            f"{source}: {name} = {_shown(name, raw)} is not valid: it must be {expected}"
        ) from None


def _shown(name: str, value: object) -> str:
    """A value for an error message; never the secret itself."""
    return "<hidden>" if name == "secret" else repr(value)


def _faults(table: dict[str, Any], source: str) -> FaultSettings:
    """A ``[paxos-kv.faults]`` table, its values' types checked here: FaultSettings compares
    them with numbers and would fail with a bare TypeError."""
    from paxoskv.transport.faults import FaultSettings

    fault_kinds = {f.name: str(f.type) for f in fields(FaultSettings)}
    for name, value in table.items():
        kind = fault_kinds.get(name)
        if kind == "int" and type(value) is not int:
            wrong = "a whole number"
        elif kind == "float" and (type(value) not in (int, float) or not math.isfinite(value)):
            wrong = "a number"
        elif kind is not None and kind.startswith("frozenset") and not isinstance(value, list):
            wrong = "a list of node ids"
        else:
            continue
        raise ConfigurationError(f"{source}: faults: {name} = {value!r} must be {wrong}")
    try:
        return FaultSettings.from_mapping(table)
    except ConfigurationError as error:
        raise ConfigurationError(f"{source}: {error}") from None


def _unknown_setting(name: str) -> ConfigurationError:
    import difflib  # here: only a misspelt setting needs it, not every start-up

    near = difflib.get_close_matches(name, list(_FIELDS), n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    return ConfigurationError(
        f"Config has no setting {name!r}{hint} (the settings are listed in README.md, "
        "Configuration)"
    )


def _unknown_variable(variable: str) -> ConfigurationError:
    import difflib  # here: only a misspelt setting needs it, not every start-up

    known = [ENV_PREFIX + name.upper() for name in _FIELDS] + [ENV_PREFIX + "CONFIG"]
    near = difflib.get_close_matches(variable, known, n=1)
    hint = f"; did you mean ${near[0]}?" if near else ""
    return ConfigurationError(
        f"unknown environment variable ${variable}{hint} (every PAXOS_KV_* variable must name a "
        "setting, as a TOML file's keys must; unset it)"
    )


def load_config(
    overrides: Mapping[str, object] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge a TOML file, ``PAXOS_KV_*`` variables and explicit overrides (highest last)."""
    values: dict[str, object] = {}
    sources: dict[str, str] = {}  # where a setting not given as a flag came from
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        from_file = _from_toml(Path(path))
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, f"config file {path}"))
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable == ENV_PREFIX + "CONFIG":
            continue
        name = variable.removeprefix(ENV_PREFIX).lower()
        if name not in _FIELDS:
            raise _unknown_variable(variable)
        if raw != "":
            values[name] = _coerce(name, raw, f"${variable}")
            sources[name] = f"${variable}"
    for name, value in (overrides or {}).items():
        if value is not None and value != ():
            values[name] = value
            sources.pop(name, None)
    try:
        return Config(**values)  # type: ignore[arg-type]
    except ConfigurationError as error:
        # A check across settings names them, not where they came from: say so, so that a
        # bad value in a file is found in that file (bad-input audit, twentieth session).
        text = str(error)  # (a one-word name, such as cluster, is also a word of the text)
        named = [name for name in sources if "_" in name and re.search(rf"\b{name}\b", text)]
        if not named or type(error) is not ConfigurationError:
            raise
        where = ", ".join(f"{name} from {sources[name]}" for name in named)
        raise ConfigurationError(f"{error} ({where})") from None


def _from_toml(path: Path) -> dict[str, object]:
    import tomllib  # here, not at the top: only a config file needs it, not every start-up

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigurationError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:  # (tomllib lets it through: a traceback, exit 1)
        raise ConfigurationError(
            f"config file {path} is not UTF-8 text (byte {error.object[error.start]:#04x} at "
            f"offset {error.start}); save it as UTF-8"
        ) from None
    section = data.get("paxos-kv", data)
    if not isinstance(section, dict):
        raise ConfigurationError(f"config file {path}: [paxos-kv] must be a table of settings")
    values: dict[str, object] = {}
    for key, raw in section.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigurationError(f"config file {path}: unknown setting {key!r}")
        values[name] = _coerce(name, raw, f"config file {path}")
    return values


def with_changes(config: Config, **changes: object) -> Config:
    return replace(config, **changes)  # type: ignore[arg-type]
