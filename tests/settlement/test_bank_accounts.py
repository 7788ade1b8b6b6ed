"""Bank accounts: the IBAN check with a reason a clerk understands (no database), and on the
real database (SQLite and PostgreSQL) that a change is recorded, never overwritten."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.bank_accounts import (
    BIC_NEEDED,
    BIC_WRONG,
    HOLDER_LONG,
    IBAN_CHECK_DIGITS,
    IBAN_COUNTRY,
    IBAN_EMPTY,
    IBAN_LENGTH,
    IBAN_NOT_SEPA,
    IBAN_OTHER,
    accounts_valid_on,
    bank_accounts_page,
    check_iban,
    read_bank_account_form,
    record_bank_account,
)
from keerpunt.settlement.models import BankAccount
from tests.helpers import make_user
from tests.settlement.factories import build_region, principal

D = dt.date


@pytest.mark.parametrize(
    ("raw", "compact", "why"),
    [
        ("NL91 ABNA 0417 1643 00", "NL91ABNA0417164300", None),
        ("nl91abna0417164300", "NL91ABNA0417164300", None),
        ("NL91ABNA0417164301", None, IBAN_CHECK_DIGITS),  # one digit off
        ("NL19ABNA0417164300", None, IBAN_CHECK_DIGITS),  # two digits swapped
        ("NL91ABNA041716430", None, IBAN_LENGTH),
        ("XX91ABNA0417164300", None, IBAN_COUNTRY),
        ("hallo!", None, IBAN_OTHER),
        ("  ", None, IBAN_EMPTY),
        ("SA0380000000608010167519", None, IBAN_NOT_SEPA),
    ],
)
def test_an_iban_is_checked_with_a_reason(raw: str, compact: str | None, why: str | None) -> None:
    assert check_iban(raw) == (compact, why)


def form(**changes: str) -> dict[str, str]:
    return {"iban": "NL91ABNA0417164300", "holder_name": "Pactum", "valid_from": "2026-01-01"} | (
        changes
    )


def test_the_bic_is_found_from_the_iban_or_asked_for() -> None:
    assert read_bank_account_form(form()).bic == "ABNANL2A"
    assert read_bank_account_form(form(bic="rabo nl 2u")).bic == "RABONL2U"
    with pytest.raises(InvalidInput) as wrong:
        read_bank_account_form(form(bic="NOPE"))
    assert wrong.value.errors == {"bic": BIC_WRONG}
    with pytest.raises(InvalidInput) as unknown:  # a Maltese bank schwifty does not list
        read_bank_account_form(form(iban="MT84MALT011000012345MTLCAST001S"))
    assert unknown.value.errors == {"bic": BIC_NEEDED}


def test_every_wrong_field_gets_its_own_message() -> None:
    with pytest.raises(InvalidInput) as exc:
        read_bank_account_form(
            form(iban="NL91ABNA0417164301", holder_name="x" * 71, valid_from="31-2-2026")
        )
    assert set(exc.value.errors) == {"iban", "holder_name", "valid_from"}
    assert exc.value.errors["holder_name"] == HOLDER_LONG


@pytest.mark.anyio
async def test_a_change_is_a_new_record_and_the_old_one_stays(runtime: Runtime) -> None:
    region = await build_region(runtime)
    clerk = await make_user(runtime, region.horizon, "Hilde Horizon", "finance")
    for values in (
        form(valid_from="2026-01-01"),
        form(iban="NL20INGB0001234567", valid_from="2026-07-01"),
        form(iban="NL39RABO0300065264", valid_from="2026-07-01"),  # a typo put right
    ):
        async with runtime.unit_of_work(principal(clerk)) as uow:
            await record_bank_account(uow, values)
    async with runtime.unit_of_work(principal(clerk)) as uow:
        page = await bank_accounts_page(uow, D(2026, 8, 1))
        june = await accounts_valid_on(uow, [region.horizon.id], D(2026, 6, 30))
        july = await accounts_valid_on(uow, [region.horizon.id], D(2026, 7, 1))
        before = await accounts_valid_on(uow, [region.horizon.id], D(2025, 12, 31))
    (own,) = page.organisations
    assert own.name == "Horizon" and not page.chooses_organisation
    assert own.current is not None and own.current.iban == "NL39 RABO 0300 0652 64"
    assert [(a.iban, a.valid_until, a.replaced) for a in own.history] == [
        ("NL39 RABO 0300 0652 64", None, False),
        ("NL20 INGB 0001 2345 67", None, True),
        ("NL91 ABNA 0417 1643 00", D(2026, 6, 30), False),
    ]
    assert june[region.horizon.id].iban == "NL91ABNA0417164300"
    assert july[region.horizon.id].iban == "NL39RABO0300065264"
    assert before == {}
    async with runtime.sessionmaker() as db:
        audited = await db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "settlement.bank_account.add")
        )
    assert audited == 3


@pytest.mark.anyio
async def test_who_may_record(runtime: Runtime) -> None:
    region = await build_region(runtime)
    # Finance of a provider: only its own organisation.
    async with runtime.unit_of_work(principal(region.other_finance)) as uow:
        with pytest.raises(NotAllowed):
            await record_bank_account(uow, form(organisation_id=str(region.altra.id)))
    # Staff without the finance role: not at all, whatever the form says.
    async with runtime.unit_of_work(principal(region.coordinator)) as uow:
        with pytest.raises(NotAllowed):
            await record_bank_account(uow, {})
    # The penvoerder: for a provider, not for another kind of organisation.
    async with runtime.unit_of_work(principal(region.finance)) as uow:
        with pytest.raises(InvalidInput):
            await record_bank_account(uow, form(organisation_id=str(region.wijkteam.id)))
        await record_bank_account(uow, form(organisation_id=str(region.altra.id)))
    async with runtime.sessionmaker() as db:
        owners = list(await db.scalars(select(BankAccount.organisation_id)))
    assert owners == [region.altra.id]
