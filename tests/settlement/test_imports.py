"""Importing contracts, allocations and deliveries from CSV and XLSX (issue #5): every bad row
reported with its Excel row number, a file with any bad row imports nothing, deliveries pass
the same rules as entry in the screen. Pure reading first, then the real database (both)."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from keerpunt.platform.errors import NotAllowed
from keerpunt.platform.i18n import current_locale
from keerpunt.platform.models import AuditEntry
from keerpunt.platform.runtime import Runtime
from keerpunt.settlement.imports import (
    ImportKind,
    ImportRejected,
    RowError,
    error_lines,
    import_file,
    map_columns,
    parse_money,
    read_table,
)
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract
from keerpunt.settlement.models import Delivery as DeliveryRow
from keerpunt.settlement.service import add_allocation
from tests.helpers import make_user
from tests.settlement.factories import principal
from tests.settlement.test_records import World, allocation, build

D = dt.date
KEERPUNT = str(Path(sys.executable).with_name("keerpunt"))


def csv_bytes(rows: list[list[str]], sep: str = ";", bom: bool = False) -> bytes:
    text = "\r\n".join(sep.join(r) for r in rows) + "\r\n"
    return ("\ufeff" if bom else "").encode() + text.encode("utf-8")


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for r in rows:
        sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ---- pure: money, the table, the columns ----


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("120", 12000),
        ("120,5", 12050),
        ("120,50", 12050),
        ("120.50", 12050),
        ("€ 1.234,56", 123456),
        ("1,234.56", 123456),
        ("1.234.567,00", 123456700),
        ("0,01", 1),
        (",5", 50),
        ("120,500", 12050),  # the same value, no rounding needed
        ("0.1", 10),
    ],
)
def test_money_is_read_exactly_into_cents(text: str, cents: int) -> None:
    assert parse_money(text) == cents


@pytest.mark.parametrize(
    "text", ["12,345", "1.234", "0,005", "12a", "-5", "1,2,3", "", "1.23.4", "1e3", "NaN"]
)
def test_money_with_more_than_cents_or_unreadable_is_refused(text: str) -> None:
    with pytest.raises(Exception) as caught:  # the private _Bad
        parse_money(text)
    assert type(caught.value).__name__ == "_Bad"


def test_csv_with_bom_semicolons_and_a_quoted_cell() -> None:
    data = csv_bytes([["Aanbieder", "Omschrijving"], ["Horizon", '"Hulp; thuis"']], bom=True)
    table = read_table(data)
    assert table.header == ("Aanbieder", "Omschrijving")
    assert table.rows == ((2, ("Horizon", "Hulp; thuis")),)


def test_csv_with_commas_and_empty_rows_keeps_excel_row_numbers() -> None:
    data = csv_bytes([["a", "b"], ["1", "2"], ["", ""], ["3", "4"]], sep=",")
    assert [n for n, _ in read_table(data).rows] == [2, 4]


def test_xlsx_cells_become_text_as_typed() -> None:
    data = xlsx_bytes([["tarief", "van", "aantal"], [120.5, dt.datetime(2026, 7, 1), 10]])
    table = read_table(data)
    assert table.rows == ((2, ("120.5", "2026-07-01", "10")),)


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        (b"", "Het bestand is leeg"),
        (b"Aanbieder;Tarief\r\nHorizon;\x81 120\r\n", "Het bestand is niet te lezen"),
        (b"PK\x03\x04 not really a workbook", "Het bestand is geen leesbaar Excel-bestand"),
    ],
)
def test_an_unreadable_file_says_why_on_row_1(data: bytes, starts: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        read_table(data)
    (error,) = caught.value.errors
    assert error.row == 1 and error.text().startswith(starts)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_past_the_row_limit_is_refused_without_reading_it_all(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from keerpunt.settlement import imports

    monkeypatch.setattr(imports, "_TOO_MANY_ROWS", 3)
    rows = [["aantal"]] + [[str(i)] for i in range(1, 10)]
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)  # type: ignore[arg-type]
    with pytest.raises(ImportRejected) as caught:
        read_table(data)
    assert caught.value.errors[0].text() == (
        "Het bestand heeft te veel rijen. Lees het in delen in van hoogstens 3 rijen."
    )
    assert len(read_table(csv_bytes(rows[:4])).rows) == 3


def test_columns_are_known_by_dutch_and_english_names_whatever_the_case() -> None:
    found, errors = map_columns(
        ImportKind.DELIVERIES,
        ["Toewijzingnummer", "PRODUCT CODE", "Begindatum", "period end", "Aantal"],
    )
    assert errors == []
    assert found == {
        "allocation_number": 0,
        "product_code": 1,
        "start": 2,
        "end": 3,
        "volume": 4,
    }


def test_unknown_doubled_and_missing_columns_are_all_reported() -> None:
    _, errors = map_columns(ImportKind.CONTRACTS, ["aanbieder", "provider", "einddatm", "tarief"])
    texts = [e.text() for e in errors]
    assert "De kolom 'aanbieder' staat er twee keer in." in texts
    assert texts[1].startswith("De kolom 'einddatm' kennen we niet. Bekende kolommen: aanbieder,")
    assert "De kolom 'productcode' ontbreekt." in texts
    assert "De kolom 'geldig vanaf' ontbreekt." in texts
    assert all(e.row == 1 for e in errors)


def test_no_alias_points_at_two_columns_of_one_kind() -> None:
    from keerpunt.settlement.imports import COLUMNS, _norm

    for columns in COLUMNS.values():
        names = [_norm(n) for c in columns for n in c.names]
        assert len(names) == len(set(names))


# ---- with the database ----

pytestmark_db = pytest.mark.anyio

CONTRACT_HEADER = [
    "Aanbieder",
    "Productcategorie",
    "Productcode",
    "Omschrijving",
    "Eenheid",
    "Tarief",
    "Geldig vanaf",
    "Geldig tot en met",
]
ALLOCATION_HEADER = [
    "Toewijzingnummer",
    "Casus",
    "Aanbieder",
    "Gemeente",
    "Soort",
    "Productcategorie",
    "Productcode",
    "Omvang",
    "Eenheid",
    "Frequentie",
    "Budget",
    "Begindatum",
    "Einddatum",
]
DELIVERY_HEADER = [
    "Aanbieder",
    "Toewijzingnummer",
    "Productcode",
    "Begindatum",
    "Einddatum",
    "Aantal",
]


async def counts(rt: Runtime) -> tuple[int, ...]:
    async with rt.sessionmaker() as db:
        return tuple(
            [
                await db.scalar(select(func.count()).select_from(m)) or 0
                for m in (Contract, AllocationRow, DeliveryRow, AuditEntry)
            ]
        )


async def run_import(rt: Runtime, w: World, kind: ImportKind, data: bytes, who=None):  # type: ignore[no-untyped-def]
    async with rt.unit_of_work(principal(who or w.region.finance)) as uow:
        return await import_file(uow, kind, data, "bestand.csv")


async def rejected(rt: Runtime, w: World, kind: ImportKind, data: bytes, who=None) -> list[str]:  # type: ignore[no-untyped-def]
    """Import a bad file: nothing may change; returns 'row column: text' per error."""
    before = await counts(rt)
    with pytest.raises(ImportRejected) as caught:
        await run_import(rt, w, kind, data, who)
    assert await counts(rt) == before  # not one row, not one audit entry
    return [f"{e.row} {e.column or '-'}: {e.text()}" for e in caught.value.errors]


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_good_contract_file_is_imported_whole_and_audited(
    runtime: Runtime, fmt: str
) -> None:
    w = await build(runtime)
    rows: list[list[str]] = [
        CONTRACT_HEADER,
        ["98000022", "45", "45A52", "Ambulant", "04", "118,75", "1-1-2026", ""],
        ["Altra", "45", "45A53", "", "4", "1.234,50", "2026-01-01", "2026-12-31"],
    ]
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)  # type: ignore[arg-type]
    before = await counts(runtime)
    result = await run_import(runtime, w, ImportKind.CONTRACTS, data)
    assert result.count == 2
    async with runtime.sessionmaker() as db:
        got = list(
            await db.execute(
                select(
                    Contract.product_code,
                    Contract.description,
                    Contract.unit,
                    Contract.tariff_cents,
                    Contract.valid_to,
                )
                .where(Contract.provider_id == w.region.altra.id)
                .order_by(Contract.product_code)
            )
        )
        actions = list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert [tuple(r) for r in got] == [
        ("45A52", "Ambulant", "04", 11875, None),
        ("45A53", "45A53", "04", 123450, D(2026, 12, 31)),
    ]
    assert actions[-3:] == [
        "settlement.contract.add",
        "settlement.contract.add",
        "settlement.import.contracts",
    ]
    assert (await counts(runtime))[0] == before[0] + 2


@pytest.mark.anyio
async def test_bad_contract_rows_are_all_listed_and_nothing_is_imported(
    runtime: Runtime,
) -> None:
    w = await build(runtime)
    data = csv_bytes(
        [
            CONTRACT_HEADER,
            ["Altra", "45", "45A52", "Ambulant", "04", "118,75", "1-1-2026", ""],  # good
            ["Nergens", "45", "45A52", "x", "04", "10", "1-1-2026", ""],
            ["Altra", "4X", "45a5", "x", "05", "12,345", "31-2-2026", ""],
            ["Altra", "45", "45A52", "x", "04", "10", "2026-06-01", ""],  # overlaps row 2
            ["Horizon", "45", "45A52", "x", "04", "10", "2026-08-01", ""],  # overlaps the DB
            ["Altra", "45", "45A54", "x", "04", "10", "2026-06-01", "2026-05-01"],
        ]
    )
    errors = await rejected(runtime, w, ImportKind.CONTRACTS, data)
    assert errors == [
        "3 provider: Er is geen aanbieder met naam of AGB-code 'Nergens'.",
        "4 product_category: Vul een productcategorie van 2 cijfers in, zoals 45.",
        "4 product_code: Vul een productcode van 5 tekens in, zoals 45A52.",
        "4 unit: Vul een eenheid in als iJw-code: 01, 04, 14, 16, 82, 83, 84.",
        "4 tariff: Een bedrag heeft hoogstens 2 cijfers achter de komma (hele centen).",
        "4 valid_from: Vul een datum in zoals 31-12-2026 of 2026-12-31.",
        "5 valid_from: Deze periode overlapt met het tarief in rij 2 (zelfde aanbieder en "
        "product).",
        "6 valid_from: Er is al een tarief voor dit product van deze aanbieder in deze periode. "
        "Kies een periode die daarna begint, of zet eerst een einddatum bij het oude tarief.",
        "7 valid_to: De einddatum ligt vóór de begindatum.",
    ]


@pytest.mark.anyio
async def test_only_finance_of_the_penvoerder_imports_contracts_and_allocations(
    runtime: Runtime,
) -> None:
    w = await build(runtime)
    data = csv_bytes([CONTRACT_HEADER, ["Horizon", "45", "45A60", "x", "04", "1", "1-1-2026", ""]])
    for kind in (ImportKind.CONTRACTS, ImportKind.ALLOCATIONS):
        with pytest.raises(NotAllowed):
            await run_import(runtime, w, kind, data, w.horizon_staff)


def allocation_rows(w: World) -> list[list[str]]:
    case = w.case_pseudonym  # type: ignore[attr-defined]
    return [
        ALLOCATION_HEADER,
        ["T-200", case, "Horizon", "Gemeente Zwolle", "specifiek", "45", "45A52", "20", "04", "4", "", "1-1-2026", "30-9-2026"],  # noqa: E501
        ["T-201", case, "98000022", "0193", "generiek", "", "", "", "", "", "5.000,00", "2026-01-01", "2026-12-31"],  # noqa: E501
        ["T-202", case, "Altra", "Gemeente Zwolle", "aspecifiek", "45", "", "", "", "", "", "2026-01-01", "2026-12-31"],  # noqa: E501
    ]  # fmt: skip


async def with_pseudonym(rt: Runtime, w: World) -> World:
    from keerpunt.platform.models import Case

    async with rt.sessionmaker() as db:
        case = await db.get(Case, w.case_id)
        assert case is not None
        w.case_pseudonym = case.pseudonym  # type: ignore[attr-defined]
    return w


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_good_allocation_file_round_trips(runtime: Runtime, fmt: str) -> None:
    w = await with_pseudonym(runtime, await build(runtime))
    rows = allocation_rows(w)
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)  # type: ignore[arg-type]
    result = await run_import(runtime, w, ImportKind.ALLOCATIONS, data)
    assert result.count == 3
    async with runtime.sessionmaker() as db:
        got = {
            a.number: (a.variant, a.volume, a.unit, a.frequency, a.budget_cents, a.end_date)
            for a in await db.scalars(select(AllocationRow))
        }
    assert got == {
        "T-200": ("specific", 20, "04", "4", None, D(2026, 9, 30)),
        "T-201": ("generic", None, None, None, 500000, D(2026, 12, 31)),
        "T-202": ("aspecific", None, None, None, None, D(2026, 12, 31)),
    }


@pytest.mark.anyio
async def test_bad_allocation_rows_and_duplicate_numbers_are_reported(runtime: Runtime) -> None:
    w = await with_pseudonym(runtime, await build(runtime))
    async with runtime.unit_of_work(principal(w.region.finance)) as uow:
        await add_allocation(uow, allocation(w))  # T-100 is taken
    case = w.case_pseudonym  # type: ignore[attr-defined]
    data = csv_bytes(
        [
            ALLOCATION_HEADER,
            ["T-100", case, "Horizon", "Zwolle?", "specifiek", "45", "45A52", "20", "04", "4", "", "1-1-2026", "30-9-2026"],  # noqa: E501
            ["T-300", "Casus-onbekend", "Horizon", "0193", "generiek", "45", "", "", "", "", "", "1-1-2026", "30-9-2026"],  # noqa: E501
            ["T-301", case, "Horizon", "0193", "anders", "", "", "", "", "", "", "1-1-2026", ""],
            ["T-302", case, "Horizon", "0193", "specifiek", "45", "45A52", "20", "04", "3", "", "1-1-2026", "30-9-2026"],  # noqa: E501
            ["T-303", case, "Horizon", "0193", "generiek", "", "", "", "", "", "1,001", "1-1-2026", "30-9-2025"],  # noqa: E501
            ["T-304", case, "Horizon", "0193", "generiek", "", "", "", "", "", "", "1-1-2026", "30-9-2026"],  # noqa: E501
            ["T-304", case, "Horizon", "0193", "generiek", "", "", "", "", "", "", "1-1-2026", "30-9-2026"],  # noqa: E501
        ]
    )  # fmt: skip
    errors = await rejected(runtime, w, ImportKind.ALLOCATIONS, data)
    assert errors == [
        "2 number: Er is al een toewijzing met nummer T-100.",
        "2 municipality: Er is geen gemeente met naam of CBS-code 'Zwolle?'.",
        "3 case: Er is geen casus 'Casus-onbekend'.",
        "3 product_category: Laat dit leeg bij deze soort toewijzing.",
        "4 variant: Vul als soort in: specifiek, aspecifiek, generiek of outputgericht.",
        "4 end: Dit vak is leeg. Vul het in.",
        "5 frequency: Vul als frequentie 1 (dag), 2 (week), 4 (maand) of 6 (totaal) in.",
        "6 budget: Een bedrag heeft hoogstens 2 cijfers achter de komma (hele centen).",
        "6 end: De einddatum ligt vóór de begindatum.",
        "8 number: Toewijzingnummer T-304 staat ook in rij 7.",
    ]


# ---- deliveries: the same rules as entry in the screen ----


async def with_allocation(rt: Runtime) -> World:
    w = await build(rt)
    async with rt.unit_of_work(principal(w.region.finance)) as uow:
        await add_allocation(uow, allocation(w))  # T-100: Horizon, 20 hours per month
    return w


def delivery(*cells: str, provider: str = "Horizon") -> list[str]:
    return [provider, *cells]


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_provider_imports_its_own_deliveries(runtime: Runtime, fmt: str) -> None:
    w = await with_allocation(runtime)
    rows: list[list[object]] = [
        ["Toewijzing", "Product", "Eerste dag", "Laatste dag", "Aantal"],
        ["T-100", "45A52", "1-7-2026", "31-7-2026", "10"],
        ["T-100", "45a52", "2026-07-01", "2026-07-15", "10"],
        ["T-100", "45A52", "1-8-2026", "31-8-2026", "20"],
    ]
    if fmt == "xlsx":
        rows[1] = ["T-100", "45A52", dt.date(2026, 7, 1), dt.date(2026, 7, 31), 10]
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)  # type: ignore[arg-type]
    result = await run_import(runtime, w, ImportKind.DELIVERIES, data, w.horizon_staff)
    assert result.count == 3
    async with runtime.sessionmaker() as db:
        got = sorted(
            (d.provider_id, d.product_category, d.start_date, d.end_date, d.volume)
            for d in await db.scalars(select(DeliveryRow))
        )
        audited = list(
            await db.scalars(
                select(AuditEntry.detail).where(
                    AuditEntry.action == "settlement.delivery.import",
                    AuditEntry.case_id == w.case_id,
                )
            )
        )
    h = w.region.horizon.id
    assert got == [
        (h, "45", D(2026, 7, 1), D(2026, 7, 15), 10),
        (h, "45", D(2026, 7, 1), D(2026, 7, 31), 10),
        (h, "45", D(2026, 8, 1), D(2026, 8, 31), 20),
    ]
    (detail,) = audited  # one row for the case, naming each delivery and its file row
    assert detail.startswith("deliveries=3 delivery:row=") and detail.endswith(":4")


@pytest.mark.anyio
async def test_bad_delivery_rows_say_why_as_the_screen_would(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    data = csv_bytes(
        [
            DELIVERY_HEADER,
            delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "10"),  # good
            delivery("T-404", "45A52", "1-7-2026", "31-7-2026", "1"),
            delivery("T-100", "45A52", "1-10-2026", "31-10-2026", "1"),
            delivery("T-100", "45A52", "1-7-2026", "5-8-2026", "1"),
            delivery("T-100", "45A99", "1-7-2026", "2-7-2026", "1"),
            delivery("T-100", "45A52", "1-8-2026", "31-8-2026", "21"),
            delivery("T-100", "45A52", "gisteren", "31-8-2026", "0"),
            delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "3"),  # same as row 2
            delivery("T-100", "45A52", "1-9-2026", "30-9-2026", "1", provider="Altra"),
        ]
    )
    errors = await rejected(runtime, w, ImportKind.DELIVERIES, data)
    assert errors == [
        "3 allocation_number: Er is geen toewijzing met nummer T-404.",
        "4 start: De periode valt (deels) buiten de toewijzing. De toewijzing loopt van "
        "1-1-2026 tot en met 30-9-2026.",
        "5 end: De periode loopt over meer dan één maand. Maak per kalendermaand een aparte regel.",
        "6 product_code: Dit product past niet bij de toewijzing. De toewijzing is voor product "
        "45A52.",
        "7 volume: Hiermee gaat het aantal boven de toewijzing: toegestaan 20 uur per maand, al "
        "goedgekeurd 0, deze regel 21.",
        "8 start: Vul een datum in zoals 31-12-2026 of 2026-12-31.",
        "8 volume: Het aantal moet een heel getal groter dan 0 zijn.",
        "9 -: Deze regel staat dubbel in het bestand: dezelfde aanbieder, toewijzing, product "
        "en periode als rij 2.",
        "10 allocation_number: Deze aanbieder heeft geen toewijzing T-100 en is op die datum "
        "niet aangemeld als onderaannemer bij de kassier die de toewijzing heeft.",
    ]


@pytest.mark.anyio
async def test_bad_cells_of_a_workbook_are_reported_as_excel_shows_them(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    data = xlsx_bytes(
        [
            ["Toewijzing", "Product", "Van", "Tot en met", "Aantal"],
            ["T-100", "45A52", dt.date(2026, 7, 1), dt.date(2026, 7, 31), 2.5],
            ["T-100", "45A52", dt.datetime(2026, 8, 1, 9, 30), dt.date(2026, 8, 31), 1],
            [None, None, None, None, None],  # an empty row keeps its number
            ["T-100", 45052, dt.date(2026, 9, 1), dt.date(2026, 9, 30), 1],
        ]
    )
    errors = await rejected(runtime, w, ImportKind.DELIVERIES, data, w.horizon_staff)
    assert errors == [
        "2 volume: Het aantal moet een heel getal groter dan 0 zijn.",
        "3 start: Vul een datum in zoals 31-12-2026 of 2026-12-31.",
        "5 product_code: Dit product past niet bij de toewijzing. De toewijzing is voor product "
        "45A52.",
    ]
    tariffs = xlsx_bytes(
        [CONTRACT_HEADER, ["Altra", 45, "45A60", "x", 4, 118.755, dt.date(2026, 1, 1), None]]
    )
    assert await rejected(runtime, w, ImportKind.CONTRACTS, tariffs) == [
        "2 tariff: Een bedrag heeft hoogstens 2 cijfers achter de komma (hele centen)."
    ]


@pytest.mark.anyio
async def test_a_file_imported_twice_is_refused_the_second_time(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    data = csv_bytes([DELIVERY_HEADER, delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "10")])
    await run_import(runtime, w, ImportKind.DELIVERIES, data)
    errors = await rejected(runtime, w, ImportKind.DELIVERIES, data)
    assert errors == [
        "2 -: Deze regel is al ingevoerd: toewijzing T-100, product 45A52, 1-7-2026 t/m "
        "31-7-2026 (aantal 10). Een correctie voert u in het scherm in."
    ]


@pytest.mark.anyio
async def test_lines_that_only_together_go_over_the_volume_are_refused(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    data = csv_bytes(
        [
            DELIVERY_HEADER,
            delivery("T-100", "45A52", "1-7-2026", "15-7-2026", "12"),
            delivery("T-100", "45A52", "16-7-2026", "31-7-2026", "12"),
        ]
    )
    errors = await rejected(runtime, w, ImportKind.DELIVERIES, data)
    assert errors == [
        "3 volume: Hiermee gaat het aantal boven de toewijzing: toegestaan 20 uur per maand, al "
        "goedgekeurd 12, deze regel 12."
    ]


@pytest.mark.anyio
async def test_a_file_that_pushes_an_earlier_line_out_is_refused(runtime: Runtime) -> None:
    w = await with_allocation(runtime)
    later = csv_bytes([DELIVERY_HEADER, delivery("T-100", "45A52", "20-7-2026", "31-7-2026", "15")])
    await run_import(runtime, w, ImportKind.DELIVERIES, later)
    earlier = csv_bytes(
        [DELIVERY_HEADER, delivery("T-100", "45A52", "1-7-2026", "10-7-2026", "10")]
    )
    errors = await rejected(runtime, w, ImportKind.DELIVERIES, earlier)
    assert errors == [
        "2 volume: Met de regels uit dit bestand past een eerder ingevoerde regel (20-7-2026 "
        "t/m 31-7-2026, aantal 15) niet meer: Hiermee gaat het aantal boven de toewijzing: "
        "toegestaan 20 uur per maand, al goedgekeurd 10, deze regel 15."
    ]


@pytest.mark.anyio
async def test_a_provider_imports_only_its_own_care_and_finance_names_the_provider(
    runtime: Runtime,
) -> None:
    w = await with_allocation(runtime)
    data = csv_bytes(
        [
            DELIVERY_HEADER,
            delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "1", provider="Altra"),
        ]
    )
    assert await rejected(runtime, w, ImportKind.DELIVERIES, data, w.horizon_staff) == [
        "2 provider: U kunt alleen zorg van uw eigen organisatie inlezen."
    ]
    unnamed = csv_bytes([DELIVERY_HEADER[1:], ["T-100", "45A52", "1-7-2026", "31-7-2026", "1"]])
    assert await rejected(runtime, w, ImportKind.DELIVERIES, unnamed) == [
        "2 provider: Vul de aanbieder in die de zorg leverde (naam of AGB-code)."
    ]
    wijkteam = await make_user(runtime, w.region.wijkteam, "Wim Wijk")
    with pytest.raises(NotAllowed):  # staff of an organisation that delivers no care
        await run_import(runtime, w, ImportKind.DELIVERIES, unnamed, wijkteam)


def test_errors_read_in_english_too() -> None:
    token = current_locale.set("en")
    try:
        (line,) = error_lines(
            ImportKind.CONTRACTS,
            [
                RowError(
                    3,
                    "tariff",
                    "Een bedrag heeft hoogstens 2 cijfers achter de komma (hele centen).",
                )
            ],
        )
    finally:
        current_locale.reset(token)
    assert line == "row 3, column tarief: An amount has at most 2 decimals (whole cents)."


# ---- the command, as an operator runs it (a real process) ----


@pytest.mark.anyio
async def test_keerpunt_import_reports_every_bad_row_and_exits_non_zero(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    w = await with_allocation(runtime)
    s = runtime.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEERPUNT_")},
        "KEERPUNT_DATABASE_URL": database_url,
        "KEERPUNT_SECRET_KEY": str(s.secret_key),
        "KEERPUNT_MASTER_KEYS": str(s.master_keys),
        "KEERPUNT_BSN_INDEX_KEY": str(s.bsn_index_key),
    }

    def keerpunt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEERPUNT, "import", *args], env=env, capture_output=True, text=True, timeout=60
        )

    bad = tmp_path / "zorg-juli.csv"
    bad.write_bytes(
        csv_bytes(
            [
                DELIVERY_HEADER,
                delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "10"),
                delivery("T-100", "45A52", "1-8-2026", "31-8-2026", "21"),
                delivery("T-100", "45A52", "1-9-2026", "5-10-2026", "1"),
            ]
        )
    )
    before = await counts(runtime)
    refused = keerpunt("deliveries", str(bad), "--as", w.horizon_staff.email)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "rij 3, kolom aantal: Hiermee gaat het aantal boven de toewijzing: toegestaan 20 uur "
        "per maand, al goedgekeurd 0, deze regel 21.",
        "rij 4, kolom einddatum: De periode loopt over meer dan één maand. Maak per "
        "kalendermaand een aparte regel.",
        "Gelezen als UTF-8.",
        "Error: Het bestand is niet ingelezen, want er staan fouten in. Er is niets opgeslagen.",
    ]
    assert await counts(runtime) == before

    good = tmp_path / "zorg-juli.xlsx"
    good.write_bytes(
        xlsx_bytes([DELIVERY_HEADER, delivery("T-100", "45A52", "1-7-2026", "31-7-2026", "10")])
    )  # type: ignore[list-item]
    done = keerpunt("deliveries", str(good), "--as", w.horizon_staff.email, "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"1 deliveries imported from {good} (sha256 ")
    async with runtime.sessionmaker() as db:
        entry = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "settlement.import.deliveries")
        )
    assert entry is not None and entry.actor == f"user:{w.horizon_staff.id}"
    assert "rows=1 " in entry.detail and entry.detail.endswith("file=zorg-juli.xlsx")

    contracts = tmp_path / "tarieven.csv"
    contracts.write_bytes(
        csv_bytes([CONTRACT_HEADER, ["Altra", "45", "45A52", "x", "04", "1", "1-1-2026", ""]])
    )
    refused = keerpunt("contracts", str(contracts), "--as", w.horizon_staff.email)
    assert refused.returncode != 0 and "U mag dit niet doen of inzien." in refused.stderr
    assert keerpunt("contracts", str(contracts), "--as", w.region.finance.email).returncode == 0


@pytest.mark.anyio
async def test_a_file_with_more_rows_than_one_statement_takes_parameters_is_imported(
    runtime: Runtime,
) -> None:
    """PostgreSQL's driver takes at most 32,767 parameters in one statement; a file may have
    200,000 rows. Every lookup by the file's values must be split, not fail with a 500."""
    w = await with_pseudonym(runtime, await build(runtime))
    case = w.case_pseudonym  # type: ignore[attr-defined]
    many = 33_000
    rows = [ALLOCATION_HEADER] + [
        [f"T-{n}", case, "Altra", "Gemeente Zwolle", "aspecifiek", "45", "", "", "", "", "", "2026-01-01", "2026-12-31"]  # noqa: E501
        for n in range(many)
    ]  # fmt: skip
    result = await run_import(runtime, w, ImportKind.ALLOCATIONS, csv_bytes(rows))
    assert result.count == many
    # The same numbers again: every row is named as taken, still without a 500.
    errors = await rejected(runtime, w, ImportKind.ALLOCATIONS, csv_bytes(rows[:1] + rows[-3:]))
    assert len(errors) == 3 and all(" number: " in e or "nummer" in e for e in errors), errors
