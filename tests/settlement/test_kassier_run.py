"""The kassier's side of a closed quarter on the real database (SQLite and PostgreSQL): the
ledger per kassier, who sees it, and the payment batch from the accounts valid on the day the
bank pays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, select, update

from keerpunt.platform.errors import NotFound
from keerpunt.platform.models import AuditEntry, User
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.bank_accounts import record_bank_account
from keerpunt.settlement.declaration import Margin, MarginKind, SubProviderAgreement
from keerpunt.settlement.kassier_run import (
    DATE_NOT_WORKDAY,
    DATE_TOO_EARLY,
    DATE_TOO_LATE,
    KASSIER_NO_ACCOUNT,
    NO_ACCOUNT,
    NO_AGREEMENT,
    InvalidExecutionDate,
    PaymentBatchBlocked,
    check_execution_date,
    execution_date,
    kassier_page,
    kassier_quarters,
    payment_file,
)
from keerpunt.settlement.models import Delivery, SettlementRun, SettlementRunLine
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.service import add_agreement, close_quarter, parse_quarter
from tests.helpers import make_user
from tests.settlement.factories import principal
from tests.settlement.test_delivery_routes import with_allocation
from tests.settlement.test_records import World, enter, line

pytestmark = pytest.mark.anyio

D = dt.date
Q3, Q4 = parse_quarter("2026Q3"), parse_quarter("2026Q4")
HORIZON_IBAN, ALTRA_IBAN = "NL91ABNA0417164300", "NL20INGB0001234567"
AFTER_Q3 = D(2026, 10, 5)


@dataclass
class Kassier:
    """Horizon holds the allocation and is the kassier; Altra delivers under it at 6,60 %."""

    w: World
    kassier_finance: User  # finance staff of Horizon
    altra_finance: User


async def build_kassier(rt: Runtime, *, accounts: bool = True) -> Kassier:
    w = await with_allocation(rt)
    horizon, altra = w.region.horizon.id, w.region.altra.id
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        await add_agreement(
            uow,
            SubProviderAgreement(horizon, altra, Margin(MarginKind.PERCENT, 660), D(2026, 1, 1)),
        )
    await enter(rt, w.horizon_staff, line(volume=3))  # 3 × € 124,80: its own care
    await enter(rt, w.altra_staff, line(volume=10))  # 10 × € 124,80 of which 6,60 % is kept
    k = Kassier(w, w.region.other_finance, await make_user(rt, w.region.altra, "Fred", "finance"))
    if accounts:
        await add_account(rt, k.kassier_finance, {"iban": HORIZON_IBAN, "holder_name": "Horizon"})
        await add_account(rt, k.altra_finance, {"iban": ALTRA_IBAN, "holder_name": "Altra Zorg"})
    return k


async def add_account(rt: Runtime, who: User, values: dict[str, str]) -> None:
    async with rt.unit_of_work(principal(who)) as uow:
        await record_bank_account(uow, {"valid_from": "2026-01-01", **values})


async def close(rt: Runtime, k: Kassier, quarter=Q3, today: dt.date = AFTER_Q3) -> None:  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(k.w.region.finance)) as uow:
        await close_quarter(uow, quarter, today)


async def page_as(rt: Runtime, who: User, quarter=Q3):  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(who)) as uow:
        return await kassier_page(uow, quarter)


async def file_as(rt: Runtime, who: User, kassier_id: int, quarter=Q3) -> bytes:  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(who)) as uow:
        return (await payment_file(uow, quarter, kassier_id)).data


def test_the_bank_pays_on_the_first_working_day_after_closing() -> None:
    friday_evening = dt.datetime(2026, 10, 2, 20, 0, tzinfo=dt.UTC)  # 22:00 in Amsterdam
    assert execution_date(friday_evening) == D(2026, 10, 5)
    late = dt.datetime(2026, 10, 5, 22, 30, tzinfo=dt.UTC)  # already Tuesday in Amsterdam
    assert execution_date(late) == D(2026, 10, 7)


async def test_the_ledger_splits_every_line_and_balances(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    page = await page_as(runtime, k.kassier_finance)
    (view,) = page.kassiers
    assert view.name == "Horizon"
    assert [(s.name, s.own, s.gross_cents, s.margin_cents, s.net_cents) for s in view.shares] == [
        ("Horizon", True, 37_440, 37_440, 0),
        ("Altra", False, 124_800, 8_237, 116_563),  # 6,60 % of € 1.248,00, rounded once
    ]
    assert [m.name for m in view.municipalities] == ["Gemeente Zwolle"]
    assert view.municipality_cents == 162_240 == view.keeps_cents + view.owes_cents
    assert view.balanced and view.can_download
    assert [(t.name, t.iban, t.cents) for t in view.transfers] == [
        ("Altra", "NL20 INGB 0001 2345 67", 116_563)
    ]


async def test_kassier_finance_and_the_penvoerder_see_it_no_one_else(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    with pytest.raises(NotFound):  # not closed yet
        await page_as(runtime, k.w.region.finance)
    await close(runtime, k)
    assert len((await page_as(runtime, k.w.region.finance)).kassiers) == 1
    assert len((await page_as(runtime, k.kassier_finance)).kassiers) == 1
    for who in (k.altra_finance, k.w.region.coordinator, k.w.horizon_staff):
        with pytest.raises(NotFound):
            await page_as(runtime, who)
        with pytest.raises(NotFound):
            await file_as(runtime, who, k.w.region.horizon.id)
    async with runtime.unit_of_work(principal(k.kassier_finance)) as uow:
        assert [c.quarter.code for c in await kassier_quarters(uow)] == ["2026Q3"]


async def test_a_provider_without_an_account_blocks_the_batch(runtime: Runtime) -> None:
    k = await build_kassier(runtime, accounts=False)
    await add_account(runtime, k.kassier_finance, {"iban": HORIZON_IBAN, "holder_name": "Horizon"})
    # Altra's account starts only after the bank pays: not valid on that day.
    await add_account(
        runtime,
        k.altra_finance,
        {"iban": ALTRA_IBAN, "holder_name": "Altra", "valid_from": "2027-06-01"},
    )
    await close(runtime, k)
    (view,) = (await page_as(runtime, k.kassier_finance)).kassiers
    assert [(p.message, p.name) for p in view.problems] == [(NO_ACCOUNT, "Altra")]
    assert not view.can_download and view.balanced
    with pytest.raises(PaymentBatchBlocked):
        await file_as(runtime, k.kassier_finance, k.w.region.horizon.id)


async def test_the_kassier_needs_its_own_account(runtime: Runtime) -> None:
    k = await build_kassier(runtime, accounts=False)
    await add_account(runtime, k.altra_finance, {"iban": ALTRA_IBAN, "holder_name": "Altra"})
    await close(runtime, k)
    (view,) = (await page_as(runtime, k.w.region.finance)).kassiers
    assert [(p.message, p.name) for p in view.problems] == [(KASSIER_NO_ACCOUNT, "Horizon")]


async def test_the_account_valid_on_the_execution_date_is_paid(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    (view,) = (await page_as(runtime, k.kassier_finance)).kassiers
    # A new account from the day the bank pays replaces the old one; one from the day after
    # does not.
    day = view.execution_date
    await add_account(
        runtime,
        k.altra_finance,
        {"iban": "NL39RABO0300065264", "holder_name": "Altra", "valid_from": day.isoformat()},
    )
    later = (day + dt.timedelta(days=1)).isoformat()
    await add_account(
        runtime,
        k.altra_finance,
        {"iban": "NL44RABO0123456789", "holder_name": "Altra", "valid_from": later},
    )
    (view,) = (await page_as(runtime, k.kassier_finance)).kassiers
    assert [t.iban for t in view.transfers] == ["NL39 RABO 0300 0652 64"]


async def test_the_file_is_the_same_every_time_and_each_download_is_audited(
    runtime: Runtime,
) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    kassier_id = k.w.region.horizon.id
    first = await file_as(runtime, k.kassier_finance, kassier_id)
    second = await file_as(runtime, k.w.region.finance, kassier_id)
    assert first == second
    async with runtime.sessionmaker() as db:
        run = await db.scalar(select(SettlementRun))
        actions = list(
            await db.scalars(
                select(AuditEntry.detail).where(
                    AuditEntry.action == "settlement.kassier.payment_batch"
                )
            )
        )
    assert run is not None
    assert len(actions) == 2 and f"run={run.id} quarter=2026Q3 kassier={kassier_id}" in actions[0]
    assert b"<MsgId>KP-2026Q3-" in first
    created = run.closed_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"<CreDtTm>{created}</CreDtTm>".encode() in first


async def test_a_net_credit_is_set_off_not_paid(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    # Altra's July line is corrected to 5 hours after Q3 closed: Q4 credits the 10 hours and
    # declares 5, so Altra owes the kassier the difference less the margin.
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(
            update(Delivery).where(Delivery.provider_id == k.w.region.altra.id).values(volume=5)
        )
    await close(runtime, k, Q4, D(2027, 1, 5))
    (view,) = (await page_as(runtime, k.kassier_finance, Q4)).kassiers
    assert [(s.name, s.cents) for s in view.set_off] == [("Altra", 116_563 - 58_282)]
    assert view.transfers == () and view.balanced and not view.can_download
    assert view.problems == ()


async def test_the_demo_shows_a_kassier_with_a_batch_to_download(runtime: Runtime) -> None:
    from keerpunt.platform import demo

    assert await demo.load(runtime)
    async with runtime.sessionmaker() as db:
        finance = await db.scalar(select(User).where(User.roles == "finance"))
    assert finance is not None
    async with runtime.unit_of_work(principal(finance)) as uow:
        (closed,) = await kassier_quarters(uow)
        (view,) = (await kassier_page(uow, closed.quarter)).kassiers
    assert view.name == "Pactum" and view.balanced and view.can_download
    assert {t.name for t in view.transfers} == {"Karakter", "Accare"}


def test_a_chosen_execution_date_must_suit_the_bank() -> None:
    monday = D(2026, 10, 5)
    assert check_execution_date(monday, monday) is None
    assert check_execution_date(D(2026, 10, 2), monday) == DATE_TOO_EARLY
    assert check_execution_date(D(2026, 10, 10), monday) == DATE_NOT_WORKDAY  # a Saturday
    assert check_execution_date(D(2027, 10, 7), monday) == DATE_TOO_LATE


async def test_a_later_execution_date_pays_the_accounts_valid_then(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    (view,) = (await page_as(runtime, k.kassier_finance)).kassiers
    later = view.execution_date + dt.timedelta(days=28)  # same weekday four weeks on
    await add_account(
        runtime,
        k.altra_finance,
        {"iban": "NL39RABO0300065264", "holder_name": "Altra", "valid_from": later.isoformat()},
    )
    async with runtime.unit_of_work(principal(k.kassier_finance)) as uow:
        page = await kassier_page(uow, Q3, later.isoformat())
        first = await payment_file(uow, Q3, k.w.region.horizon.id, later.isoformat())
        again = await payment_file(uow, Q3, k.w.region.horizon.id, later.isoformat())
        default = await payment_file(uow, Q3, k.w.region.horizon.id)
        with pytest.raises(InvalidExecutionDate):
            await payment_file(uow, Q3, k.w.region.horizon.id, "2026-10-01")
        refused = await kassier_page(uow, Q3, "2026-10-01")
    (view,) = page.kassiers
    assert view.execution_date == later and [t.iban for t in view.transfers] == [
        "NL39 RABO 0300 0652 64"
    ]
    assert first.data == again.data != default.data
    assert f"<ReqdExctnDt>{later.isoformat()}</ReqdExctnDt>".encode() in first.data
    assert b"<IBAN>NL20INGB0001234567</IBAN>" in default.data
    assert refused.date_error == DATE_TOO_EARLY
    assert refused.execution_date == refused.earliest_date


async def test_a_line_without_an_agreement_is_named_not_paid(runtime: Runtime) -> None:
    k = await build_kassier(runtime)
    await close(runtime, k)
    # Agreements are only ever added; one gone from the database must not make a wrong file.
    # A credit takes back the margin its quarter stored; Q3 here closed before margins were
    # stored, and Q4 credits Altra's corrected line when its agreement is gone.
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(update(SettlementRun).values(margins_stored=False))
        await db.execute(update(SettlementRunLine).values(margin_cents=None))
        await db.execute(delete(AgreementRow))
        await db.execute(
            update(Delivery).where(Delivery.provider_id == k.w.region.altra.id).values(volume=5)
        )
    (q3,) = (await page_as(runtime, k.kassier_finance)).kassiers  # of today: none
    assert [(p.message, p.name) for p in q3.problems] == [(NO_AGREEMENT, "Altra")]
    await close(runtime, k, Q4, D(2027, 1, 5))
    (view,) = (await page_as(runtime, k.kassier_finance, Q4)).kassiers
    assert [(p.message, p.name) for p in view.problems] == [(NO_AGREEMENT, "Altra")]
    assert not view.can_download and not view.complete
