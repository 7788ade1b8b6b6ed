"""The kassier's payment batch as SEPA pain.001.001.03 (no database), checked against the
official XSD that the ``sepaxml`` package ships."""

from __future__ import annotations

import datetime as dt
from importlib.resources import files
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from keerpunt.settlement.kassier import KassierLedger, LedgerEntry
from keerpunt.settlement.sepa import (
    NAMESPACE,
    BankAccount,
    InvalidBankAccount,
    check_account,
    payment_batch,
    sepa_text,
)

KASSIER, ALTRA, HORIZON, LINDE = 1, 3, 4, 5
NS = {"p": NAMESPACE}
PACTUM = BankAccount("Pactum Jeugdhulp", "NL91ABNA0417164300", "ABNANL2A")
ACCOUNTS = {
    ALTRA: BankAccount("Altra Zorg", "NL20INGB0001234567"),
    HORIZON: BankAccount("Stichting Horizon (Jeugd & Gezin)", "NL44 RABO 0123 4567 89", "RABONL2U"),
    LINDE: BankAccount("De Linde", "NL39RABO0300065264"),
}
CREATED = dt.datetime(2026, 10, 2, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(files("sepaxml") / "schemas" / "pain.001.001.03.xsd"))


def entry(provider_id: int, net: int, margin: int = 0) -> LedgerEntry:
    return LedgerEntry(provider_id, provider_id, 90, dt.date(2026, 7, 1), net + margin, margin, net)


def ledger(*entries: LedgerEntry) -> KassierLedger:
    return KassierLedger(KASSIER, entries)


def batch(the_ledger: KassierLedger, accounts: dict[int, BankAccount] = ACCOUNTS) -> bytes:
    return payment_batch(
        the_ledger,
        PACTUM,
        accounts,
        message_id="KEERPUNT-2026Q3-1",
        created_at=CREATED,
        execution_date=dt.date(2026, 10, 5),
        remittance="Keerpunt GiZ 2026K3 afrekening",
    ).to_xml()


def test_batch_is_valid_pain_001_001_03(schema: xmlschema.XMLSchema) -> None:
    xml = batch(ledger(entry(ALTRA, 112_080, 7_920), entry(HORIZON, 50_001)))
    schema.validate(xml.decode())
    root = ET.fromstring(xml)
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == "2"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "1620.81"
    amounts = [
        (
            tx.findtext("p:Cdtr/p:Nm", namespaces=NS),
            tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS),
            tx.findtext("p:Amt/p:InstdAmt", namespaces=NS),
        )
        for tx in root.iterfind(".//p:CdtTrfTxInf", NS)
    ]
    assert amounts == [
        ("Altra Zorg", "NL20INGB0001234567", "1120.80"),
        ("Stichting Horizon (Jeugd Gezin)", "NL44RABO0123456789", "500.01"),
    ]


def test_the_batch_pays_the_ledger_to_the_cent() -> None:
    the_ledger = ledger(entry(ALTRA, 1), entry(ALTRA, 2), entry(HORIZON, 99_999_99))
    made = payment_batch(
        the_ledger, PACTUM, ACCOUNTS, message_id="M", created_at=CREATED,
        execution_date=dt.date(2026, 10, 5), remittance="x",
    )  # fmt: skip
    assert {p.provider_id: p.amount_cents for p in made.payments} == the_ledger.owes
    assert made.total_cents == sum(the_ledger.owes.values())


def test_a_provider_that_owes_the_kassier_is_set_off_not_paid(schema: xmlschema.XMLSchema) -> None:
    the_ledger = ledger(entry(ALTRA, -5_000), entry(HORIZON, 10_000), entry(LINDE, 0))
    made = payment_batch(
        the_ledger, PACTUM, ACCOUNTS, message_id="M", created_at=CREATED,
        execution_date=dt.date(2026, 10, 5), remittance="x",
    )  # fmt: skip
    assert [p.provider_id for p in made.payments] == [HORIZON]
    assert made.set_off == {ALTRA: -5_000}
    schema.validate(made.to_xml().decode())


def test_same_input_gives_the_same_bytes() -> None:
    the_ledger = ledger(entry(ALTRA, 100), entry(HORIZON, 200))
    assert batch(the_ledger) == batch(the_ledger)


@pytest.mark.parametrize(
    ("iban", "ok"),
    [
        ("NL91ABNA0417164300", True),
        ("nl91 abna 0417 1643 00", True),
        ("NL91ABNA0417164301", False),  # check digits (mod 97) wrong
        ("NL91ABNA041716430", False),  # too short for NL
        ("XX00ABNA0417164300", False),  # no such country
        ("", False),
    ],
)
def test_check_account_validates_the_iban(iban: str, ok: bool) -> None:
    if ok:
        assert check_account(BankAccount("x", iban)).iban == "NL91ABNA0417164300"
    else:
        with pytest.raises(ValueError):
            check_account(BankAccount("x", iban))


def test_a_malformed_bic_is_refused() -> None:
    with pytest.raises(ValueError):
        check_account(BankAccount("x", "NL91ABNA0417164300", "ABN"))


def test_bad_accounts_are_all_named_and_nothing_is_made() -> None:
    accounts = dict(ACCOUNTS)
    accounts[ALTRA] = BankAccount("Altra Zorg", "NL20INGB0001234568")
    accounts[HORIZON] = BankAccount("Horizon", "NL02RABO0123456780")
    with pytest.raises(InvalidBankAccount) as caught:
        batch(ledger(entry(ALTRA, 100), entry(HORIZON, 100)), accounts)
    assert caught.value.params == {"names": "Altra Zorg, Horizon"}


def test_a_provider_without_an_account_is_named() -> None:
    with pytest.raises(InvalidBankAccount):
        batch(ledger(entry(99, 100)))


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Zorggroep Ééntje & Zoon", "Zorggroep Eentje Zoon"),
        ("Jeugdzorg ‘t Kompas", "Jeugdzorg t Kompas"),
        ("", "-"),
    ],
)
def test_names_use_the_sepa_character_set(text: str, clean: str) -> None:
    assert sepa_text(text, 70) == clean
