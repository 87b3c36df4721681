"""The catch-up log lines say what "caught up" means: within 100 of the chosen slots the node
knows of (a chaos audit read "applied slot 4451 of 4602", then "caught up at slot 4502")."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from paxoskv.paxos.effects import Applied
from paxoskv.runtime.replica import Replica


def test_catching_up_then_caught_up_names_both_slots(caplog: pytest.LogCaptureFixture) -> None:
    replica = SimpleNamespace(
        node_id="n3", engine=SimpleNamespace(known_commit=4602), _catch_up_logged_at=0.0
    )
    with caplog.at_level(logging.INFO, logger="paxoskv.node"):
        Replica._log_catch_up(replica, Applied(4451, 1))  # type: ignore[arg-type]
        Replica._log_catch_up(replica, Applied(4480, 1))  # type: ignore[arg-type]  (< 1 s on)
        Replica._log_catch_up(replica, Applied(4502, 1))  # type: ignore[arg-type]
        Replica._log_catch_up(replica, Applied(4602, 1))  # type: ignore[arg-type]
    assert [record.getMessage() for record in caplog.records] == [
        "n3 catching up: applied slot 4451 of 4602",
        "n3 caught up: applied slot 4502 of 4602 known chosen (within 100)",
    ]
