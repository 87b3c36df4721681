"""A node's (or a client's) settings: one frozen object, validated when it is made.

Settings come from flags, ``PAXOS_KV_*`` environment variables or a TOML file, in that order
of precedence (:func:`load_config` merges them); whatever the source, a bad value fails here
with a message naming the setting, never later as an ``OSError`` from deep inside a socket.
The group, interface and secret are all a client needs to find its cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from paxoskv.errors import ConfigurationError
from paxoskv.transport import FaultSettings, TransportSettings, UdpSettings
from paxoskv.transport.settings import DEFAULT_GROUP, DEFAULT_GROUP_PORT, parse_host_port

Durability = Literal["durable", "os", "memory"]
ENV_PREFIX = "PAXOS_KV_"


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
    snapshot_every_commands: int = 100_000
    snapshot_every_bytes: int = 64 << 20
    log_retention_slots: int = 2_000  # chosen slots kept past a snapshot for lagging replicas
    history_limit_events: int = 10_000  # change events kept for watchers resuming
    history_limit_bytes: int = 64 << 20  # and the most bytes of values those events hold
    hello_interval_s: float = 0.25
    suspect_after_s: float = 1.0
    down_after_s: float = 3.0
    auto_remove_down_after_s: float | None = None
    min_voters: int = 3
    faults: FaultSettings | None = None  # seeded fault injection on real sockets (chaos runs)
    event_loop: str = (
        "auto"  # what `paxos-kv node` runs on: auto (uvloop if installed), asyncio, uvloop
    )

    def __post_init__(self) -> None:
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "peers", tuple(self.peers))
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
        if self.learner and self.bootstrap_expect is not None:
            raise ConfigurationError("a learner cannot bootstrap a cluster; start it with --join")
        if self.request_timeout_s <= 0:
            raise ConfigurationError("request_timeout_s must be positive")
        if not 0 < self.suspect_after_s < self.down_after_s:
            raise ConfigurationError("need 0 < suspect_after_s < down_after_s")
        if self.min_voters < 1:
            raise ConfigurationError("min_voters must be at least 1")
        for name in ("history_limit_events", "history_limit_bytes"):
            limit = getattr(self, name)
            if type(limit) is not int or limit < 1:
                raise ConfigurationError(
                    f"{name} must be a positive whole number, not {limit!r}; it bounds the "
                    "change history watchers resume from (a larger one lets them resume from "
                    "further back, at the cost of memory on every node)"
                )
        if self.node_id is not None:
            _check_node_id(self.node_id)
        self.transport_settings(node_incarnation=None)  # validates scope, group, peers, secret

    def check_node_storage(self) -> None:
        """A replica (unlike a client) needs somewhere to persist, unless told not to."""
        if self.data_dir is None and self.durability != "memory":
            raise ConfigurationError(
                "a node needs --data-dir to persist its state; or choose --durability memory"
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

    def transport_settings(self, node_incarnation: int | None) -> TransportSettings:
        group_host, group_port = parse_host_port(self.group)
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


def _check_node_id(node_id: str) -> None:
    if not node_id or len(node_id) > 64 or not node_id.isprintable() or " " in node_id:
        raise ConfigurationError(
            f"node id {node_id!r} must be 1-64 printable characters without spaces"
        )


_FIELDS = {f.name: f for f in fields(Config)}


def _coerce(name: str, raw: object, source: str) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    kind = str(_FIELDS[name].type)
    try:
        if isinstance(raw, str) and "bool" in kind:
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes")
        if "tuple" in kind:
            return tuple(raw.split(",")) if isinstance(raw, str) else tuple(raw)  # type: ignore[arg-type]
        if kind.startswith("int") or kind.startswith("int |"):
            return int(raw)  # type: ignore[call-overload]
        if "float" in kind:
            return float(raw)  # type: ignore[arg-type]
        if "Path" in kind:
            return Path(str(raw))
        if name == "secret":
            return str(raw).encode()
        return raw
    except (TypeError, ValueError):
        raise ConfigurationError(f"{source}: {name} = {raw!r} is not a valid {kind}") from None


def load_config(
    overrides: Mapping[str, object] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge a TOML file, ``PAXOS_KV_*`` variables and explicit overrides (highest last)."""
    values: dict[str, object] = {}
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_from_toml(Path(path)))
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, f"${ENV_PREFIX}{name.upper()}")
    for name, value in (overrides or {}).items():
        if value is not None and value != ():
            values[name] = value
    return Config(**values)  # type: ignore[arg-type]


def _from_toml(path: Path) -> dict[str, object]:
    import tomllib  # here, not at the top: only a config file needs it, not every start-up

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigurationError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {path} is not valid TOML: {error}") from None
    section = data.get("paxos-kv", data)
    values: dict[str, object] = {}
    for key, raw in section.items():
        name = key.replace("-", "_")
        if name == "faults" and isinstance(raw, dict):  # a [paxos-kv.faults] table
            values["faults"] = FaultSettings.from_mapping(raw)
            continue
        if name not in _FIELDS:
            raise ConfigurationError(f"config file {path}: unknown setting {key!r}")
        values[name] = _coerce(name, raw, f"config file {path}")
    return values


def with_changes(config: Config, **changes: object) -> Config:
    return replace(config, **changes)  # type: ignore[arg-type]
