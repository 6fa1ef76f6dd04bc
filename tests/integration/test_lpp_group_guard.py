"""A consignee's group may not change while it has use in the LPP bucket the policy
gives it now: its own draws on that bucket (a group's shared bucket included)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.clock import ManualClock
from ledger.errors import Conflict
from ledger.service import Ledger
from tests.factories import H100, consignee, line, operator, reserve


def test_own_use_in_the_groups_bucket_pins_the_group_and_only_that(
    ledger: Ledger, clock: ManualClock
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "a1", "SG", group="g")
    consignee(ledger, "a2", "SG", group="g")
    held = reserve(ledger, line("SG", "a2", quantity=10)).reservation
    assert held is not None  # held, not committed: a live hold counts too
    with pytest.raises(Conflict) as err:
        consignee(ledger, "a2", "SG", group=None)
    assert err.value.code == "group_change_with_lpp_use"
    assert f"{10 * H100:,}" in err.value.detail and "2025" in err.value.detail
    consignee(ledger, "a1", "SG", group="h")  # its group-mate's use is not its own
    ledger.release(held.id, "vendor1")
    consignee(ledger, "a2", "SG", group=None)  # released: nothing counts any more
    # Use in an earlier period does not pin the group in the next one.
    res = reserve(ledger, line("SG", "a2", quantity=1)).reservation
    assert res is not None
    ledger.commit(res.id, "vendor1")
    clock.set(datetime(clock.now().year + 1, 1, 1, tzinfo=UTC))
    consignee(ledger, "a2", "SG", group="g")
