"""Leases: granted, kept alive, revoked and expired in log time, taking their keys along."""

from __future__ import annotations

import random

from paxoskv.state import (
    ChangeEvent,
    Configuration,
    Delete,
    Failed,
    KVStateMachine,
    LeaseExpire,
    LeaseExpired,
    LeaseGrant,
    LeaseGranted,
    LeaseInfo,
    LeaseKeepalive,
    LeaseRenewed,
    LeaseRevoke,
    LeaseRevoked,
    NoOp,
    Set,
)


def fresh() -> KVStateMachine:
    return KVStateMachine(Configuration(frozenset({"a"})))


def granted(m: KVStateMachine, ttl_ms: int, log_time_ms: int, lease_id: int | None = None) -> int:
    result = m.apply(LeaseGrant(ttl_ms, lease_id), log_time_ms)
    assert isinstance(result, LeaseGranted)
    return result.lease_id


def test_a_grant_without_an_id_takes_its_revision_as_the_id() -> None:
    m = fresh()
    m.apply(NoOp(), 0)
    assert m.apply(LeaseGrant(500), 1000) == LeaseGranted(2, 2, 500)
    assert m.lease_info(2) == LeaseInfo(2, 500, 1500, ())


def test_a_grant_may_choose_its_id_but_not_one_that_is_held() -> None:
    m = fresh()
    assert m.apply(LeaseGrant(500, lease_id=7), 0) == LeaseGranted(1, 7, 500)
    result = m.apply(LeaseGrant(500, lease_id=7), 0)
    assert isinstance(result, Failed) and result.error_code == "lease_exists"
    assert m.revision == 2


def test_an_auto_id_taken_by_an_explicit_grant_steps_to_the_next_free_id() -> None:
    m = fresh()
    m.apply(LeaseGrant(500, lease_id=2), 0)
    m.apply(LeaseGrant(500, lease_id=3), 0)
    assert m.apply(LeaseGrant(500), 0) == LeaseGranted(3, 4, 500)


def test_a_set_on_an_unknown_lease_fails_and_writes_nothing() -> None:
    m = fresh()
    result = m.apply(Set("k", 1, lease_id=5), 0)
    assert isinstance(result, Failed) and result.error_code == "lease_not_found"
    assert "grant a new lease" in result.message
    assert m.get("k") is None and m.revision == 1


def test_revoke_deletes_the_keys_of_the_lease_at_one_revision_in_key_order() -> None:
    m = fresh()
    lease = granted(m, 1000, 0)
    for key in ["z", "a", "m"]:
        m.apply(Set(key, key.upper(), lease_id=lease), 0)
    m.apply(Set("kept", 1), 0)
    assert m.apply(LeaseRevoke(lease), 10) == LeaseRevoked(6, lease, 3)
    assert m.events_since(5) == [
        ChangeEvent("delete", "a", None, "A", 6),
        ChangeEvent("delete", "m", None, "M", 6),
        ChangeEvent("delete", "z", None, "Z", 6),
    ]
    assert m.keys("") == ["kept"]
    assert m.lease_info(lease) is None


def test_revoking_or_keeping_alive_an_unknown_lease_fails() -> None:
    m = fresh()
    for command in (LeaseRevoke(3), LeaseKeepalive(3)):
        result = m.apply(command, 0)
        assert isinstance(result, Failed) and result.error_code == "lease_not_found"


def test_a_set_without_a_lease_detaches_the_key_and_a_set_with_another_moves_it() -> None:
    m = fresh()
    first, second = granted(m, 1000, 0), granted(m, 1000, 0)
    m.apply(Set("detached", 1, lease_id=first), 0)
    m.apply(Set("moved", 1, lease_id=first), 0)
    m.apply(Set("deleted", 1, lease_id=first), 0)
    m.apply(Set("detached", 2), 0)
    m.apply(Set("moved", 2, lease_id=second), 0)
    m.apply(Delete("deleted"), 0)
    assert m.get("moved").lease_id == second  # type: ignore[union-attr]
    assert m.get("detached").lease_id is None  # type: ignore[union-attr]
    assert m.apply(LeaseRevoke(first), 0) == LeaseRevoked(9, first, 0)
    assert m.keys("") == ["detached", "moved"]
    assert m.lease_info(second) == LeaseInfo(second, 1000, 1000, ("moved",))


def test_keepalive_moves_expiry_to_log_time_plus_ttl() -> None:
    m = fresh()
    lease = granted(m, 1000, 5000)
    assert m.due_leases(6000) == [lease]
    assert m.apply(LeaseKeepalive(lease), 5800) == LeaseRenewed(2, lease, 1000, 6800)
    assert m.due_leases(6000) == []
    assert m.due_leases(6800) == [lease]


def test_expire_applies_only_when_the_lease_is_due_in_log_time() -> None:
    m = fresh()
    lease = granted(m, 1000, 0)
    m.apply(Set("session", "s", lease_id=lease), 0)
    assert m.apply(LeaseExpire(lease), 999) == LeaseExpired(3, lease, False, 0)
    assert m.get("session") is not None
    assert m.apply(LeaseExpire(lease), 1000) == LeaseExpired(4, lease, True, 1)
    assert m.get("session") is None
    assert m.events_since(3) == [ChangeEvent("expire", "session", None, "s", 4)]


def test_a_keepalive_that_reaches_the_log_before_the_expiry_wins() -> None:
    m = fresh()
    lease = granted(m, 1000, 0)
    m.apply(Set("session", "s", lease_id=lease), 0)
    m.apply(LeaseKeepalive(lease), 1200)  # late, but first in the log
    assert m.apply(LeaseExpire(lease), 1200) == LeaseExpired(4, lease, False, 0)
    assert m.get("session") is not None


def test_expiring_an_unknown_or_revoked_lease_is_a_no_op_that_takes_a_revision() -> None:
    m = fresh()
    lease = granted(m, 10, 0)
    m.apply(LeaseRevoke(lease), 0)
    assert m.apply(LeaseExpire(lease), 100) == LeaseExpired(3, lease, False, 0)
    assert m.apply(LeaseExpire(999), 100) == LeaseExpired(4, 999, False, 0)


def test_log_time_never_goes_back_so_a_slow_leaders_stamp_cannot_revive_a_lease() -> None:
    m = fresh()
    lease = granted(m, 100, 1000)
    m.apply(NoOp(), 1200)
    assert m.apply(LeaseExpire(lease), 1050) == LeaseExpired(3, lease, True, 0)
    assert m.log_time_ms == 1200
    renewed = m.apply(LeaseGrant(100), 900)
    assert m.lease_info(renewed.lease_id).expires_at_ms == 1300  # type: ignore[union-attr]


def test_due_leases_match_a_brute_force_scan_through_many_keepalives() -> None:
    rng = random.Random(20240607)
    m = fresh()
    expiry: dict[int, int] = {}
    now_ms = 0
    for _ in range(3000):
        now_ms += rng.randrange(0, 50)
        roll = rng.random()
        if roll < 0.2 or not expiry:
            ttl_ms = rng.randrange(1, 2000)
            lease = granted(m, ttl_ms, now_ms)
            expiry[lease] = now_ms + ttl_ms
        elif roll < 0.8:
            lease = rng.choice(sorted(expiry))
            result = m.apply(LeaseKeepalive(lease), now_ms)
            assert isinstance(result, LeaseRenewed)
            expiry[lease] = result.expires_at_ms
        else:
            lease = rng.choice(sorted(expiry))
            m.apply(LeaseRevoke(lease), now_ms)
            del expiry[lease]
        probe_ms = now_ms + rng.randrange(-100, 2000)
        assert m.due_leases(probe_ms) == sorted(i for i, e in expiry.items() if e <= probe_ms)
