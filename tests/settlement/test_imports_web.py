"""The import page (/settlement/import) and the allocations proposed by a fixed arrangement, as
the penvoerder's finance and a provider use them (real database, both backends)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import func, select

from keerpunt.platform.i18n import local_date
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.declaration import Margin, MarginKind, SubProviderAgreement
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.proposals import holder_for, is_covered, prefill
from keerpunt.settlement.rules import ContractTerms
from keerpunt.settlement.service import add_agreement
from keerpunt.triage.arrangement import expected_end
from tests.helpers import login
from tests.settlement.factories import add_arrangement, principal
from tests.settlement.test_imports import DELIVERY_HEADER, csv_bytes, delivery, with_allocation
from tests.settlement.test_records import build
from tests.settlement.test_routes import text_of

D = dt.date
pytestmark = pytest.mark.anyio
# Proposals are for lines that have not ended: these run from this month for 9 months.
START = dt.date.today().replace(day=1)
END = expected_end(START)


async def count(rt: Runtime, model: type) -> int:
    async with rt.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model)) or 0


# ---- the import page ----


async def test_a_provider_uploads_its_deliveries(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    page = await client.get("/settlement/import")
    assert page.status_code == 200
    assert 'value="deliveries"' in page.text and 'value="contracts"' not in page.text
    data = csv_bytes([DELIVERY_HEADER[1:], ["T-100", "45A52", "1-7-2026", "31-7-2026", "10"]])
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "deliveries"},
        files={"file": ("juli.csv", data, "text/csv")},
    )
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    assert "Het bestand is ingelezen. Aantal regels: 1." in text_of(r.text)
    assert await count(runtime, DeliveryRow) == 1


async def test_a_bad_file_shows_every_row_and_saves_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    page = await client.get("/settlement/import")
    assert all(f'value="{k}"' in page.text for k in ("contracts", "allocations", "deliveries"))
    data = csv_bytes(
        [
            DELIVERY_HEADER,
            delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "10"),
            delivery("T-100", "45A52", "1-8-2026", "31-8-2026", "21"),
            delivery("T-100", "45A52", "1-9-2026", "30-9-2026", "0"),
        ]
    )
    before = await count(runtime, AuditEntry)
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "deliveries"},
        files={"file": ("zorg.csv", data, "text/csv")},
    )
    assert r.status_code == 422
    page_text = text_of(r.text)
    assert "Het bestand is niet ingelezen, want er staan fouten in. Er is niets opgeslagen." in (
        page_text
    )
    assert "Fouten in zorg.csv (2)" in page_text
    assert "3 aantal Hiermee gaat het aantal boven de toewijzing" in page_text
    assert "4 aantal Het aantal moet een heel getal groter dan 0 zijn." in page_text
    assert await count(runtime, DeliveryRow) == 0
    assert await count(runtime, AuditEntry) == before


async def test_no_file_or_kind_says_what_to_choose(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.post("/settlement/import", data={"csrf_token": csrf})
    assert r.status_code == 422
    assert "Kies wat u wilt inlezen." in r.text and "Kies een bestand (CSV of Excel)." in r.text
    assert 'aria-invalid="true"' in r.text


async def test_the_upload_needs_the_csrf_token(client: httpx.AsyncClient, runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    await login(client, runtime, user_id=w.horizon_staff.id)
    data = csv_bytes([DELIVERY_HEADER[1:], ["T-100", "45A52", "1-7-2026", "31-7-2026", "10"]])
    r = await client.post(
        "/settlement/import",
        data={"kind": "deliveries"},
        files={"file": ("juli.csv", data, "text/csv")},
    )
    assert r.status_code == 403
    assert await count(runtime, DeliveryRow) == 0


async def test_a_provider_cannot_import_contracts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await with_allocation(runtime)
    csrf = await login(client, runtime, user_id=w.horizon_staff.id)
    r = await client.post(
        "/settlement/import",
        data={"csrf_token": csrf, "kind": "contracts"},
        files={"file": ("t.csv", b"aanbieder;tarief\r\nHorizon;1\r\n", "text/csv")},
    )
    assert r.status_code == 403


# ---- proposals: the rules ----


def line(**changes: object) -> SimpleNamespace:
    values: dict[str, object] = dict(
        line_id=7,
        case_id=3,
        provider_id=11,
        product_code="45A52",
        minutes_per_week=120,
        start_date=D(2026, 7, 1),
        end_date=D(2027, 3, 31),
        intensity_unit="hour",
        units_per_week=None,
    )
    values.update(changes)
    return SimpleNamespace(**values)


def hour_tariff(unit: str = "04") -> ContractTerms:
    return ContractTerms(11, "45A52", unit, 12_480, D(2026, 1, 1), None)


@pytest.mark.parametrize(
    ("changes", "tariff", "expected"),
    [
        ({}, hour_tariff(), ("2", "04", "2")),  # 2 hours a week
        ({"minutes_per_week": 150}, hour_tariff(), ("98", "04", "6")),  # 2,5 h × 273 days / 7
        ({"minutes_per_week": 150}, hour_tariff("01"), ("150", "01", "2")),
        ({"intensity_unit": "dagdeel", "units_per_week": 3, "minutes_per_week": 720}, None, ("3", "16", "2")),  # noqa: E501
        ({}, hour_tariff("83"), ("", "83", "")),  # euros: the clerk fills in the volume
    ],
)  # fmt: skip
def test_the_arrangement_line_fills_in_the_allocation(
    changes: dict[str, object], tariff: ContractTerms | None, expected: tuple[str, str, str]
) -> None:
    values = prefill(line(**changes), 11, 5, tariff)  # type: ignore[arg-type]
    assert (values["volume"], values["unit"], values["frequency"]) == expected
    assert values["variant"] == "specific" and values["product_category"] == "45"
    assert (values["start"], values["end"]) == ("2026-07-01", "2027-03-31")
    assert values["municipality_id"] == "5" and values["number"] == ""


def test_in_the_kassier_model_the_kassier_holds_the_allocation() -> None:
    agreement = SubProviderAgreement(1, 11, Margin(MarginKind.PERCENT, 660), D(2026, 1, 1))
    assert holder_for(11, D(2026, 7, 1), [agreement]) == 1
    assert holder_for(11, D(2025, 7, 1), [agreement]) == 11  # not yet registered: its own
    assert holder_for(12, D(2026, 7, 1), [agreement]) == 12


def test_a_line_is_covered_by_an_allocation_for_its_case_holder_and_product() -> None:
    from keerpunt.settlement.declaration import Allocation, Variant

    a = Allocation("T-1", 3, 11, 5, Variant.SPECIFIC, D(2026, 6, 1), D(2026, 12, 31), "45", "45A52")
    assert is_covered(line(), 11, [a])  # type: ignore[arg-type]
    assert not is_covered(line(), 1, [a])  # type: ignore[arg-type]  # another holder
    assert not is_covered(line(product_code="45A53"), 11, [a])  # type: ignore[arg-type]
    assert not is_covered(line(case_id=4), 11, [a])  # type: ignore[arg-type]
    assert not is_covered(line(start_date=D(2027, 1, 1)), 11, [a])  # type: ignore[arg-type]
    aspecific = Allocation("T-2", 3, 11, 5, Variant.ASPECIFIC, D(2026, 6, 1), D(2026, 12, 31), "45")
    assert is_covered(line(), 11, [aspecific])  # type: ignore[arg-type]
    assert not is_covered(line(product_code="54A01"), 11, [aspecific])  # type: ignore[arg-type]
    generic = Allocation("T-3", 3, 11, 5, Variant.GENERIC, D(2026, 6, 1), D(2026, 12, 31))
    assert is_covered(line(product_code="54A01"), 11, [generic])  # type: ignore[arg-type]


# ---- proposals: the page and the confirm route ----


CONFIRM = {"number": "Z-2026-001", "variant": "specific"}


async def test_finance_sees_the_proposal_and_confirms_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build(runtime)
    pseudonym = await add_arrangement(
        runtime, w.region.finance, [(w.region.horizon, "45A52", 120, START, END)]
    )
    yesterday = dt.date.today() - dt.timedelta(days=1)
    ended = await add_arrangement(  # over: its allocation is entered by hand, not proposed
        runtime, w.region.finance, [(w.region.horizon, "45A52", 60, yesterday, yesterday)]
    )
    csrf = await login(client, runtime, user_id=w.region.finance.id)
    r = await client.get("/settlement/allocations")
    page = text_of(r.text)
    assert "Voorstellen uit het arrangement" in page
    assert f"{pseudonym}: 45A52 bij Horizon" in page and "2 uur per week" in page
    # Dates as people write them, not as the database stores them.
    assert f"{local_date(START)} tot en met {local_date(END)}" in page
    assert START.isoformat() not in page.split("Bekijken en vastleggen")[0]
    assert ended not in page
    line_id = r.text.split('name="line_id" value="')[1].split('"')[0]

    # Adjusted: the municipality allowed 3 hours a week, not 2.
    form = {
        **CONFIRM,
        "csrf_token": csrf,
        "line_id": line_id,
        "provider_id": str(w.region.horizon.id),
        "municipality_id": str(w.zwolle.id),
        "product_category": "45",
        "product_code": "45A52",
        "volume": "3",
        "unit": "04",
        "frequency": "2",
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    missing = await client.post("/settlement/proposals", data={**form, "number": "", "volume": "x"})
    assert missing.status_code == 422
    assert "Vul het toewijzingsnummer in dat de gemeente heeft gegeven." in missing.text
    assert "Het aantal moet een heel getal groter dan 0 zijn." in missing.text
    assert 'value="x"' in missing.text  # what was typed stays
    assert await count(runtime, AllocationRow) == 0

    r = await client.post("/settlement/proposals", data=form)
    assert r.status_code == 303
    r = await client.get(r.headers["location"])
    page = text_of(r.text)
    assert "Toewijzing Z-2026-001 is vastgelegd." in page
    assert "Voorstellen uit het arrangement" not in page  # proposed no more
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(AllocationRow))
        audit = await db.scalar(
            select(AuditEntry.detail).where(AuditEntry.action == "settlement.allocation.add")
        )
    assert row is not None
    assert (row.volume, row.frequency, row.arrangement_line_id) == (3, "2", int(line_id))
    assert audit is not None and audit.endswith(f"arrangement_line={line_id}")

    again = await client.post("/settlement/proposals", data={**form, "number": "Z-2026-002"})
    assert again.status_code == 422 and "Dit voorstel bestaat niet (meer)." in again.text


async def test_in_the_kassier_model_the_kassier_sees_and_confirms_the_proposal(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    w = await build(runtime)
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        await add_agreement(
            uow,
            SubProviderAgreement(
                w.region.horizon.id,
                w.region.altra.id,
                Margin(MarginKind.PERCENT, 660),
                D(2026, 1, 1),
            ),
        )
    await add_arrangement(runtime, w.region.finance, [(w.region.altra, "45A52", 60, START, END)])
    # Altra delivers, but Horizon is its kassier: the proposal is Horizon's, not Altra's.
    await login(client, runtime, user_id=w.altra_staff.id)
    altra_page = await client.get("/settlement/allocations")
    assert "Voorstellen uit het arrangement" not in altra_page.text
    # Horizon's staff without the finance role see no proposal either (it names the case).
    await login(client, runtime, user_id=w.horizon_staff.id)
    horizon_page = await client.get("/settlement/allocations")
    assert "Voorstellen uit het arrangement" not in horizon_page.text
    csrf = await login(client, runtime, user_id=w.region.other_finance.id)
    r = await client.get("/settlement/allocations")
    assert "Kassiersmodel: de toewijzing is voor de kassier, Horizon." in text_of(r.text)
    line_id = r.text.split('name="line_id" value="')[1].split('"')[0]
    assert f'name="provider_id" value="{w.region.horizon.id}"' in r.text  # fixed, not a choice
    form = {
        **CONFIRM,
        "csrf_token": csrf,
        "line_id": line_id,
        "provider_id": str(w.region.horizon.id),
        "municipality_id": str(w.zwolle.id),
        "product_category": "45",
        "product_code": "45A52",
        "volume": "1",
        "unit": "04",
        "frequency": "2",
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    # A holder cannot give the allocation to someone else.
    other = await client.post(
        "/settlement/proposals", data={**form, "provider_id": str(w.region.altra.id)}
    )
    assert other.status_code == 403
    r = await client.post("/settlement/proposals", data=form)
    assert r.status_code == 303
    async with runtime.sessionmaker() as db:
        row = await db.scalar(select(AllocationRow))
    assert row is not None and row.provider_id == w.region.horizon.id
