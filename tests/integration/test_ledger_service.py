"""The ledger service on real SQLite and PostgreSQL: two phases, all-or-nothing,
lazy expiry, idempotency, the chain and the projection."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.audit import balances_from_entries, projected_balances, verify_chain
from ledger.errors import Conflict, IdempotencyMismatch, InvalidInput, NotFound
from ledger.service import Ledger
from ledger.views import ReserveCommand
from tests.factories import H100, consignee, license_, line, operator, reserve

LPP_KEY = ("lpp", "consignee:sg-lab", "2025")


@pytest.fixture
def books(ledger: Ledger) -> Ledger:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    consignee(ledger, "cn-lab", "CN")
    license_(ledger, "lic-sg", "SG", 10**9)
    return ledger


def entry_kinds(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT kind FROM entry ORDER BY seq")]


def assert_books_consistent(ledger: Ledger) -> None:
    truth = balances_from_entries(ledger.engine)
    projection = projected_balances(ledger.engine)
    for key, value in projection.items():
        assert truth.get(key, (0, 0)) == value, key
    assert verify_chain(ledger.engine).ok


def test_hold_then_commit_moves_tpp_from_held_to_committed(books: Ledger) -> None:
    out = reserve(books, line("SG", "sg-lab", quantity=1699))
    assert out.held and out.reservation is not None
    assert out.reservation.lines[0].path == "lpp"
    assert out.reservation.tpp == 1699 * H100 == 26_898_568
    assert projected_balances(books.engine)[LPP_KEY] == (0, 26_898_568)

    view = books.commit(out.reservation.id, "vendor1")
    assert view.status == "committed"
    assert projected_balances(books.engine)[LPP_KEY] == (26_898_568, 0)
    assert entry_kinds(books) == ["hold", "commit"]
    assert_books_consistent(books)


def test_commit_and_release_are_idempotent_and_exclusive(books: Ledger) -> None:
    a = reserve(books, line("SG", "sg-lab", quantity=10)).reservation
    b = reserve(books, line("SG", "sg-lab", quantity=10)).reservation
    assert a and b
    books.commit(a.id, "vendor1")
    assert books.commit(a.id, "vendor1").status == "committed"  # repeat: same answer
    with pytest.raises(Conflict) as err:
        books.release(a.id, "vendor1")
    assert err.value.code == "already_committed"
    books.release(b.id, "vendor1")
    assert books.release(b.id, "vendor1").status == "released"
    with pytest.raises(Conflict) as err:
        books.commit(b.id, "vendor1")
    assert err.value.code == "already_released"
    assert entry_kinds(books) == ["hold", "hold", "commit", "release"]
    assert_books_consistent(books)


def test_denied_line_holds_nothing_for_any_line(books: Ledger) -> None:
    out = reserve(books, line("SG", "sg-lab", quantity=5), line("CN", "cn-lab", quantity=1))
    assert not out.held
    assert [v.constraint for v in out.violations] == ["tier3"]
    assert out.violations[0].line == 1
    assert entry_kinds(books) == []
    assert all(v == (0, 0) for v in projected_balances(books.engine).values())


def test_lpp_edge_then_licence_draws_country_allocation(books: Ledger) -> None:
    assert reserve(books, line("SG", "sg-lab", quantity=1699)).held
    denied = reserve(books, line("SG", "sg-lab", quantity=1))
    assert not denied.held
    lpp = next(v for v in denied.violations if v.constraint == "lpp")
    assert (lpp.cap, lpp.used, lpp.requested) == (26_900_000, 26_898_568, 15_832)
    ok = reserve(books, line("SG", "sg-lab", quantity=1, license_id="lic-sg"))
    assert ok.reservation and ok.reservation.lines[0].path == "license"
    balances = projected_balances(books.engine)
    assert balances[("country_allocation", "SG", "2025-2027")] == (0, 15_832)
    assert balances[("license", "lic-sg", "all")] == (0, 15_832)
    assert_books_consistent(books)


def test_hold_past_its_time_counts_for_nothing_before_any_job(books: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    first = reserve(books, line("SG", "sg-lab", quantity=1699), hold_seconds=60).reservation
    assert first is not None
    assert not reserve(books, line("SG", "sg-lab", quantity=1)).held
    clock.advance(59)
    assert not reserve(books, line("SG", "sg-lab", quantity=1)).held
    clock.advance(1)  # exactly at expires_at: the hold no longer counts
    assert books.get_reservation(first.id).status == "expired"
    again = reserve(books, line("SG", "sg-lab", quantity=1699))
    assert again.held
    with pytest.raises(Conflict) as err:
        books.commit(first.id, "vendor1")
    assert err.value.code == "expired"
    with pytest.raises(Conflict):
        books.release(first.id, "vendor1")
    # The expiry job then records it; the projection still matches the entries.
    assert books.expire_due() == 1
    assert books.expire_due() == 0
    assert entry_kinds(books) == ["hold", "hold", "expire"]
    assert_books_consistent(books)


def test_expire_entry_is_effective_at_the_hold_expiry(books: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    res = reserve(books, line("SG", "sg-lab", quantity=1), hold_seconds=10).reservation
    assert res is not None
    clock.advance(3600)
    books.expire_due()
    with books.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT effective_at, recorded_at FROM entry WHERE kind = 'expire'")
        ).one()
    assert row[0] < row[1]


def test_idempotent_replay_returns_first_answer_and_writes_nothing(books: Ledger) -> None:
    first = reserve(books, line("SG", "sg-lab", quantity=3), key="k1")
    again = reserve(books, line("SG", "sg-lab", quantity=3), key="k1")
    assert again.replayed and not first.replayed
    assert first.reservation and again.reservation
    assert again.reservation.id == first.reservation.id
    assert entry_kinds(books) == ["hold"]
    with pytest.raises(IdempotencyMismatch):
        reserve(books, line("SG", "sg-lab", quantity=4), key="k1")
    # A denial is replayed too, even after the quota would allow it.
    denied = reserve(books, line("SG", "sg-lab", quantity=1700), key="k2")
    assert not denied.held
    assert not reserve(books, line("SG", "sg-lab", quantity=1700), key="k2").held
    # Keys are scoped per actor.
    other = reserve(books, line("SG", "sg-lab", quantity=3), key="k1", actor="vendor2")
    assert other.reservation and other.reservation.id != first.reservation.id


def test_invalid_input_names_the_field_and_writes_nothing(books: Ledger) -> None:
    cases = [
        (line("SG", "nobody"), "lines[0].consignee_id"),
        (line("SG", "sg-lab", operator_id="ghost"), "lines[0].operator_id"),
        (line("SG", "sg-lab", chip="Z9000", quantity=1), "lines[0].chip"),
        (line("SG", "sg-lab", quantity=0), "lines[0].quantity"),
        (line("SG", "sg-lab", tpp=-5), "lines[0].tpp"),
        (line("XX", "sg-lab"), "lines[0].destination_country"),
        (line("MY", "sg-lab"), "lines[0].consignee_id"),  # not located in MY
        (line("SG", "sg-lab", license_id="nope"), "lines[0].license_id"),
    ]
    for bad, field in cases:
        with pytest.raises(InvalidInput) as err:
            reserve(books, bad)
        assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        books.reserve(ReserveCommand("v", ()))
    assert err.value.field == "lines"
    with pytest.raises(InvalidInput) as err:
        reserve(books, line("SG", "sg-lab"), hold_seconds=30 * 86400 + 1)
    assert err.value.field == "hold_seconds"
    assert entry_kinds(books) == []


def test_reversal_is_a_new_entry_returning_committed_tpp(books: Ledger) -> None:
    res = reserve(books, line("SG", "sg-lab", quantity=2)).reservation
    assert res is not None
    with pytest.raises(Conflict):
        books.reverse(res.id, "admin", "not committed yet")
    books.commit(res.id, "vendor1")
    view = books.reverse(res.id, "admin", "shipment cancelled")
    assert view.reversed_at is not None
    books.reverse(res.id, "admin", "again")  # idempotent: no second reversal
    assert entry_kinds(books) == ["hold", "commit", "reversal"]
    assert projected_balances(books.engine)[LPP_KEY] == (0, 0)
    assert_books_consistent(books)


def test_batch_answers_each_command_on_its_own(books: Ledger) -> None:
    cmds = [
        ReserveCommand("v", (line("SG", "sg-lab", quantity=1000),)),
        ReserveCommand("v", (line("SG", "sg-lab", quantity=1000),)),  # over LPP after #1
        ReserveCommand("v", (line("ZZ", "sg-lab"),)),  # invalid
        ReserveCommand("v", (line("SG", "sg-lab", quantity=699),)),  # fits exactly
    ]
    results = books.execute(cmds)
    assert results[0].held and not results[1].held  # type: ignore[union-attr]
    assert isinstance(results[2], InvalidInput)
    assert results[3].held  # type: ignore[union-attr]
    assert projected_balances(books.engine)[LPP_KEY] == (0, 1699 * H100)
    assert_books_consistent(books)


def test_unknown_reservation_is_not_found(books: Ledger) -> None:
    with pytest.raises(NotFound):
        books.commit("res_missing", "v")
    with pytest.raises(NotFound):
        books.get_reservation("res_missing")


@pytest.mark.parametrize("statement", ["UPDATE entry SET tpp = tpp + 1", "DELETE FROM entry"])
def test_database_refuses_update_and_delete_of_entries(books: Ledger, statement: str) -> None:
    reserve(books, line("SG", "sg-lab", quantity=1))
    with pytest.raises(sa.exc.DBAPIError) as err, books.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert "append-only" in str(err.value)
    assert entry_kinds(books) == ["hold"]
    assert verify_chain(books.engine).ok


def test_tampered_entry_is_found_by_verify(books: Ledger) -> None:
    for _ in range(3):
        reserve(books, line("SG", "sg-lab", quantity=1))
    with books.engine.begin() as conn:  # an attacker with DDL rights drops the guard
        if books.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE entry DISABLE TRIGGER entry_no_update_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER entry_no_update")
        conn.exec_driver_sql("UPDATE entry SET tpp = 1 WHERE seq = 2")
    report = verify_chain(books.engine)
    assert not report.ok and report.first_bad_seq == 2 and report.entries == 1


def test_on_commit_listeners_see_changed_buckets_only_after_commit(books: Ledger) -> None:
    seen: list[set[tuple[str, str]]] = []
    books.on_commit(lambda keys: seen.append({(k.kind, k.key) for k in keys}))
    books.on_commit(lambda keys: 1 / 0)  # a broken listener never undoes a commit
    res = reserve(books, line("SG", "sg-lab", quantity=1)).reservation
    assert res is not None
    assert seen == [{("lpp", "consignee:sg-lab"), ("footprint", "op1:SG")}]
    assert not reserve(books, line("CN", "cn-lab")).held  # denied: nothing changed
    assert len(seen) == 1
    books.commit(res.id, "v")
    assert len(seen) == 2


def test_now_is_read_after_the_write_lock(books: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    """A commit that waited for the lock across its hold's expiry is refused: the instant
    that decides is the one at which the transaction holds the lock."""
    import threading
    import time

    from sqlalchemy.orm import Session

    from ledger.store.engine import writer

    res = reserve(books, line("SG", "sg-lab", quantity=1), hold_seconds=60).reservation
    assert res is not None
    outcome: dict[str, object] = {}
    with Session(writer(books.engine)) as blocker, blocker.begin():
        blocker.execute(sa.text("SELECT seq FROM chain_head WHERE id = 1 FOR UPDATE")
                        if books.engine.dialect.name == "postgresql"
                        else sa.text("UPDATE chain_head SET seq = seq WHERE id = 1"))

        def commit() -> None:
            try:
                outcome["view"] = books.commit(res.id, "vendor1")
            except Conflict as err:
                outcome["error"] = err.code

        waiter = threading.Thread(target=commit)
        waiter.start()
        time.sleep(0.5)  # the commit is now waiting for the lock
        clock.advance(61)  # ... while its hold expires
    waiter.join(10)
    assert outcome == {"error": "expired"}
    # Time recorded in the chain never goes backwards, even if a clock does.
    clock.advance(-3600)
    reserve(books, line("SG", "sg-lab", quantity=1))
    with books.engine.connect() as conn:
        times = [r[0] for r in conn.execute(sa.text("SELECT recorded_at FROM entry ORDER BY seq"))]
    assert times == sorted(times)


def test_group_cannot_change_while_lpp_use_counts_this_year(books: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    """Regrouping after the fact must not reset LPP use (review finding: a consignee
    grouped after drawing the full LPP let its group draw it all again)."""
    consignee(books, "a1", "SG", group=None)
    consignee(books, "a2", "SG", group=None)
    res = reserve(books, line("SG", "a1", quantity=1699)).reservation
    assert res is not None
    books.commit(res.id, "v")
    with pytest.raises(Conflict) as err:
        consignee(books, "a1", "SG", group="g")
    assert err.value.code == "group_change_with_lpp_use" and "26,898,568" in err.value.detail
    consignee(books, "a2", "SG", group="g")  # no LPP use this year: free to move
    consignee(books, "a1", "SG", group=None)  # unchanged group: a plain PUT
    # A new calendar year starts afresh: the group can change then.
    clock.set(clock.now().replace(year=clock.now().year + 1, month=1, day=1))
    consignee(books, "a1", "SG", group="g")
    assert not reserve(books, line("SG", "a2", quantity=1700)).held  # the group shares one cap
