"""The replicated state machine: the key-value map, revisions, leases, dedup, watch history
and membership, as one pure object that every replica feeds the same log.

No clocks, no I/O, no randomness, no asyncio: time arrives as the ``log_time_ms`` the leader
stamped into each command. See :mod:`paxoskv.state.machine` for the theory of operation.
"""

from typing import TYPE_CHECKING

from paxoskv.lazy import lazy_attributes

if TYPE_CHECKING:
    from paxoskv.state.command_wire import decode_command, encode_command, encode_set
    from paxoskv.state.commands import (
        AddLearner,
        Command,
        Compare,
        CompareOp,
        CompareTarget,
        ConfigChange,
        Delete,
        DemoteVoter,
        LeaseExpire,
        LeaseGrant,
        LeaseKeepalive,
        LeaseRevoke,
        NoOp,
        PromoteLearner,
        RemoveMember,
        Set,
        Txn,
    )
    from paxoskv.state.configuration import Configuration, NodeId
    from paxoskv.state.dedup import ClientId
    from paxoskv.state.history import ChangeEvent, EventKind
    from paxoskv.state.keys import Key, KeyPart, Prefix, check_key, check_prefix, sort_keys
    from paxoskv.state.leases import LeaseInfo
    from paxoskv.state.machine import KVStateMachine
    from paxoskv.state.results import (
        INVALID_CONFIG_CHANGE,
        LEASE_EXISTS,
        LEASE_NOT_FOUND,
        MALFORMED_COMMAND,
        STALE_REQUEST,
        Applied,
        ConfigChanged,
        Deleted,
        Failed,
        KeyValue,
        LeaseExpired,
        LeaseGranted,
        LeaseRenewed,
        LeaseRevoked,
        Result,
        TxnResult,
        Written,
        decode_result,
        encode_result,
    )
    from paxoskv.state.wire import MalformedCommand, MalformedResult, MalformedSnapshot

# Imported on first use (paxoskv.lazy), as paxoskv.paxos's are: a module that needs one of
# these pays for its own module only, not for every module of the package. The imports above
# are for type checkers (the package ships py.typed).
_HOMES = {
    **dict.fromkeys(
        ("decode_command", "encode_command", "encode_set"), "paxoskv.state.command_wire"
    ),
    **dict.fromkeys(
        (
            "AddLearner",
            "Command",
            "Compare",
            "CompareOp",
            "CompareTarget",
            "ConfigChange",
            "Delete",
            "DemoteVoter",
            "LeaseExpire",
            "LeaseGrant",
            "LeaseKeepalive",
            "LeaseRevoke",
            "NoOp",
            "PromoteLearner",
            "RemoveMember",
            "Set",
            "Txn",
        ),
        "paxoskv.state.commands",
    ),
    **dict.fromkeys(("Configuration", "NodeId"), "paxoskv.state.configuration"),
    "ClientId": "paxoskv.state.dedup",
    **dict.fromkeys(("ChangeEvent", "EventKind"), "paxoskv.state.history"),
    **dict.fromkeys(
        ("Key", "KeyPart", "Prefix", "check_key", "check_prefix", "sort_keys"), "paxoskv.state.keys"
    ),
    "LeaseInfo": "paxoskv.state.leases",
    "KVStateMachine": "paxoskv.state.machine",
    **dict.fromkeys(
        (
            "INVALID_CONFIG_CHANGE",
            "LEASE_EXISTS",
            "LEASE_NOT_FOUND",
            "MALFORMED_COMMAND",
            "STALE_REQUEST",
            "Applied",
            "ConfigChanged",
            "Deleted",
            "Failed",
            "KeyValue",
            "LeaseExpired",
            "LeaseGranted",
            "LeaseRenewed",
            "LeaseRevoked",
            "Result",
            "TxnResult",
            "Written",
            "decode_result",
            "encode_result",
        ),
        "paxoskv.state.results",
    ),
    **dict.fromkeys(
        ("MalformedCommand", "MalformedResult", "MalformedSnapshot"), "paxoskv.state.wire"
    ),
}
if not TYPE_CHECKING:  # so that a type checker still refuses a name that is not here
    __getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals())

__all__ = [
    "INVALID_CONFIG_CHANGE",
    "LEASE_EXISTS",
    "LEASE_NOT_FOUND",
    "MALFORMED_COMMAND",
    "STALE_REQUEST",
    "AddLearner",
    "Applied",
    "ChangeEvent",
    "ClientId",
    "Command",
    "Compare",
    "CompareOp",
    "CompareTarget",
    "ConfigChange",
    "ConfigChanged",
    "Configuration",
    "Delete",
    "Deleted",
    "DemoteVoter",
    "EventKind",
    "Failed",
    "KVStateMachine",
    "Key",
    "KeyPart",
    "KeyValue",
    "LeaseExpire",
    "LeaseExpired",
    "LeaseGrant",
    "LeaseGranted",
    "LeaseInfo",
    "LeaseKeepalive",
    "LeaseRenewed",
    "LeaseRevoke",
    "LeaseRevoked",
    "MalformedCommand",
    "MalformedResult",
    "MalformedSnapshot",
    "NoOp",
    "NodeId",
    "Prefix",
    "PromoteLearner",
    "RemoveMember",
    "Result",
    "Set",
    "Txn",
    "TxnResult",
    "Written",
    "check_key",
    "check_prefix",
    "decode_command",
    "decode_result",
    "encode_command",
    "encode_result",
    "encode_set",
    "sort_keys",
]
