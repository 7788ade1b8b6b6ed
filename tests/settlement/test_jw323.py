"""JW323-shaped declaration files and the check of a provider's own totals (no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from xml.etree import ElementTree as ET

from keerpunt.settlement.declaration import Direction, OutLine
from keerpunt.settlement.jw323 import (
    Sender,
    TotalsDifference,
    check_own_totals,
    declaration_files,
)

D = dt.date
HORIZON, ALTRA, ZWOLLE, DEVENTER = 2, 3, 90, 91
SENDERS = {
    HORIZON: Sender(HORIZON, "98000011", "Horizon"),
    ALTRA: Sender(ALTRA, "98000022", "Altra"),
}
CODES = {ZWOLLE: "0193", DEVENTER: "0150"}
CREATED = D(2026, 10, 2)


def line(**kw: object) -> OutLine:
    base = OutLine(
        delivery_id=1,
        allocation_number="T-1",
        holder_id=HORIZON,
        provider_id=HORIZON,
        municipality_id=ZWOLLE,
        product_category="45",
        product_code="45A52",
        start=D(2026, 7, 1),
        end=D(2026, 7, 31),
        volume=10,
        unit="04",
        tariff_cents=12_345,
        amount_cents=123_450,
        direction=Direction.DEBIT,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_one_file_per_provider_municipality_and_month() -> None:
    lines = [
        line(delivery_id=1),
        line(delivery_id=2, start=D(2026, 8, 3), end=D(2026, 8, 9)),
        line(delivery_id=3, municipality_id=DEVENTER),
        line(delivery_id=4, holder_id=ALTRA, provider_id=ALTRA),
    ]
    files = declaration_files(lines, SENDERS, CODES, CREATED)
    assert [(f.sender.name, f.municipality_code, f.month) for f in files] == [
        ("Horizon", "0150", (2026, 7)),
        ("Horizon", "0193", (2026, 7)),
        ("Horizon", "0193", (2026, 8)),
        ("Altra", "0193", (2026, 7)),
    ]


def test_the_file_holds_header_lines_and_totals() -> None:
    debit = line(delivery_id=1, revision=2)
    credit = line(delivery_id=1, volume=12, amount_cents=148_140).credit()
    (file,) = declaration_files([debit, credit], SENDERS, CODES, CREATED)
    root = ET.fromstring(file.to_xml())
    header = root.find("Header")
    assert header is not None
    assert header.findtext("BerichtCode") == "323"
    assert header.findtext("Afzender") == "98000011"
    assert header.findtext("Ontvanger") == "0193"
    assert header.findtext("DeclaratieFactuurPeriode/Begindatum") == "2026-07-01"
    assert header.findtext("DeclaratieFactuurPeriode/Einddatum") == "2026-07-31"
    assert header.findtext("AantalPrestaties") == "2"
    # 1.234,50 debit minus 1.481,40 credit: 246,90 credit, a sum of the lines.
    assert header.findtext("TotaalBedrag/Bedrag") == "24690"
    assert header.findtext("TotaalBedrag/DebetCredit") == "C"
    first, second = root.findall("Prestaties/Prestatie")
    # The credit goes first: a line is credited in full before it is corrected.
    assert first.findtext("ReferentieNummer") == "1-1C"
    assert first.findtext("VorigReferentieNummer") == "1-1"
    assert first.findtext("DeclaratieBedrag/DebetCredit") == "C"
    assert {
        tag: second.findtext(tag)
        for tag in (
            "ReferentieNummer",
            "ToewijzingNummer",
            "Product/Categorie",
            "Product/Code",
            "ProductPeriode/Begindatum",
            "ProductPeriode/Einddatum",
            "GeleverdVolume",
            "Eenheid",
            "ProductTarief",
            "BerekendBedrag",
            "DeclaratieBedrag/Bedrag",
            "DeclaratieBedrag/DebetCredit",
        )
    } == {
        "ReferentieNummer": "1-2",
        "ToewijzingNummer": "T-1",
        "Product/Categorie": "45",
        "Product/Code": "45A52",
        "ProductPeriode/Begindatum": "2026-07-01",
        "ProductPeriode/Einddatum": "2026-07-31",
        "GeleverdVolume": "10",
        "Eenheid": "04",
        "ProductTarief": "12345",
        "BerekendBedrag": "123450",
        "DeclaratieBedrag/Bedrag": "123450",
        "DeclaratieBedrag/DebetCredit": "D",
    }


def test_same_lines_give_the_same_bytes_whatever_their_order() -> None:
    lines = [line(delivery_id=i, start=D(2026, 7, i), end=D(2026, 7, i)) for i in range(1, 6)]
    one = declaration_files(lines, SENDERS, CODES, CREATED)[0].to_xml()
    two = declaration_files(lines[::-1], SENDERS, CODES, CREATED)[0].to_xml()
    assert one == two
    assert one.startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_own_totals_that_agree_give_no_differences() -> None:
    lines = [line(delivery_id=1), line(delivery_id=2, allocation_number="T-2", amount_cents=5)]
    (file,) = declaration_files(lines, SENDERS, CODES, CREATED)
    assert check_own_totals(file, 123_455, {"T-1": 123_450, "T-2": 5}) == []


def test_own_totals_that_differ_are_named_per_allocation_and_in_total() -> None:
    (file,) = declaration_files([line()], SENDERS, CODES, CREATED)
    differences = check_own_totals(file, 123_451, {"T-1": 123_451, "T-9": 0})
    assert differences == [
        TotalsDifference("T-1", 123_450, 123_451),
        TotalsDifference(None, 123_450, 123_451),
    ]
    assert differences[0].difference_cents == 1
