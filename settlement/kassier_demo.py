"""Demo data for the kassier model (``keerpunt demo load``): the penvoerder Pactum holds an
allocation as kassier, Karakter (6,60 %) and Accare (€ 2,50 per hour) deliver under it, every
one of them has a bank account, and the quarter before last is closed — so the kassier page
shows a ledger and a payment batch to download, while the last quarter is still there for the
penvoerder to close. Called once from the platform's demo."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from keerpunt.platform.i18n import AMSTERDAM
from keerpunt.platform.models import Organisation, User
from keerpunt.platform.principal import staff_principal
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.bank_accounts import record_bank_account
from keerpunt.settlement.declaration import (
    Allocation,
    DeliveryDraft,
    Frequency,
    Margin,
    MarginKind,
    SubProviderAgreement,
    Variant,
)
from keerpunt.settlement.service import (
    ContractDraft,
    add_agreement,
    add_allocation,
    add_contract,
    close_quarter,
    quarter_of,
    record_delivery,
)

__all__ = ["load"]

KASSIER = "Pactum"
PRODUCT = "45A53"
ACCOUNTS = {  # illustrative accounts with valid check digits
    "Pactum": ("NL91ABNA0417164300", "Stichting Pactum"),
    "Karakter": ("NL20INGB0001234567", "Karakter Kinder- en Jeugdpsychiatrie"),
    "Accare": ("NL39RABO0300065264", "Accare Child Study Center"),
}
SUB_PROVIDERS = {
    "Karakter": Margin(MarginKind.PERCENT, 660),
    "Accare": Margin(MarginKind.FIXED, 250),
}
# (provider, month of the quarter 0-2, hours)
DELIVERED = [("Pactum", 0, 6), ("Karakter", 0, 12), ("Karakter", 1, 10), ("Accare", 1, 8),
             ("Accare", 2, 9), ("Pactum", 2, 4)]  # fmt: skip


def _month(start: dt.date, n: int) -> tuple[dt.date, dt.date]:
    first = dt.date(start.year, start.month + n, 1)
    after = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, after - dt.timedelta(days=1)


async def load(rt: Runtime, case_id: int, municipality_id: int) -> None:
    """The kassier arrangement of the demo, acting as the penvoerder's finance staff."""
    today = dt.datetime.now(AMSTERDAM).date()
    quarter = quarter_of(today).previous.previous
    async with rt.sessionmaker() as db:
        ids = {
            o.name: o.id
            for o in await db.scalars(
                select(Organisation).where(Organisation.name.in_(list(ACCOUNTS)))
            )
        }
        finance = await db.scalar(
            select(User)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(Organisation.is_penvoerder, User.roles.contains("finance"))
            .order_by(User.id)
        )
        assert finance is not None
        who = staff_principal(finance)
    kassier = ids[KASSIER]
    async with rt.unit_of_work(who) as uow:
        # A product of its own, so its tariff never overlaps another demo's (whatever runs
        # first, and in January-March too, when the quarter lies in the year before).
        await add_contract(
            uow,
            ContractDraft(
                provider_id=kassier,
                product_category="45",
                product_code=PRODUCT,
                description="Specialistische jeugdhulp, ambulant, met onderaannemers",
                unit="04",
                tariff_cents=11_800,
                valid_from=quarter.start,
                valid_to=None,
            ),
        )
        for name, (iban, holder) in ACCOUNTS.items():
            await record_bank_account(
                uow,
                {
                    "organisation_id": str(ids[name]),
                    "iban": iban,
                    "holder_name": holder,
                    "valid_from": quarter.start.isoformat(),
                },
            )
        for name, margin in SUB_PROVIDERS.items():
            await add_agreement(
                uow, SubProviderAgreement(kassier, ids[name], margin, quarter.start)
            )
        await add_allocation(
            uow,
            Allocation(
                number="DEMO-K-0001",
                case_id=case_id,
                provider_id=kassier,
                municipality_id=municipality_id,
                variant=Variant.SPECIFIC,
                start=quarter.start,
                end=quarter.start + dt.timedelta(days=273),  # nine months (DOMAIN.md)
                product_category="45",
                product_code=PRODUCT,
                volume=40,
                unit="04",
                frequency=Frequency.MONTH,
            ),
        )
    for name, month, hours in DELIVERED:
        start, end = _month(quarter.start, month)
        async with rt.unit_of_work(who) as uow:
            await record_delivery(
                uow, DeliveryDraft("DEMO-K-0001", PRODUCT, start, end, hours, ids[name])
            )
    async with rt.unit_of_work(who) as uow:
        await close_quarter(uow, quarter, today)
