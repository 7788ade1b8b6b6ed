"""The kassier's payment batch as a SEPA credit transfer (pain.001.001.03): pure, no database.

What the kassier owes each sub-provider (:class:`~keerpunt.settlement.kassier.KassierLedger`)
becomes one credit transfer per provider, for the kassier to upload to its bank. IBANs and BICs
are checked with ``schwifty`` (country format and mod-97 check digits) before any XML is made;
a provider that owes the kassier (a net credit) is not paid and is listed to be set off later.
The XML is deterministic: the same ledger, parties and dates give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from keerpunt.platform.errors import DomainError
from keerpunt.platform.i18n import N_
from keerpunt.settlement.kassier import KassierLedger

__all__ = [
    "NAMESPACE",
    "BankAccount",
    "InvalidBankAccount",
    "Payment",
    "PaymentBatch",
    "check_account",
    "payment_batch",
    "sepa_text",
]

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"


class InvalidBankAccount(DomainError):
    """One or more IBANs or BICs are wrong; ``params["names"]`` lists whose."""

    status_code = 422
    message = N_(
        "Het rekeningnummer (IBAN) of de BIC klopt niet van: %(names)s. Vraag het juiste "
        "nummer na en pas het aan voordat u de betaalopdracht maakt."
    )


@dataclass(frozen=True)
class BankAccount:
    """A party's name and account as the bank needs them."""

    name: str
    iban: str
    bic: str | None = None


def check_account(account: BankAccount) -> BankAccount:
    """The account with IBAN (and BIC) in their compact form; raises ``ValueError`` when the
    IBAN's country format or check digits are wrong, or the BIC is malformed."""
    try:
        iban = IBAN(account.iban).compact
        bic = BIC(account.bic).compact if account.bic else None
    except SchwiftyException as exc:
        raise ValueError(str(exc)) from exc
    return BankAccount(account.name, iban, bic)


# SEPA's Latin character set; anything else is transliterated (é -> e) or replaced.
_SEPA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")


def sepa_text(text: str, limit: int) -> str:
    plain = unicodedata.normalize("NFKD", text)
    kept = "".join(
        c if c in _SEPA_CHARS else ("" if unicodedata.combining(c) else " ") for c in plain
    )
    return " ".join(kept.split())[:limit] or "-"


@dataclass(frozen=True)
class Payment:
    provider_id: int
    account: BankAccount
    amount_cents: int
    end_to_end_id: str
    remittance: str


@dataclass(frozen=True)
class PaymentBatch:
    """One payment order (betaalopdracht) of the kassier; ``set_off`` are providers whose
    balance is a credit (they owe the kassier) and who are therefore not paid now."""

    message_id: str
    created_at: dt.datetime
    execution_date: dt.date
    debtor: BankAccount
    payments: tuple[Payment, ...]
    set_off: Mapping[int, int]

    @property
    def total_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments)

    def to_xml(self) -> bytes:
        ET.register_namespace("", NAMESPACE)
        doc = ET.Element(_q("Document"))
        init = _sub(doc, "CstmrCdtTrfInitn")
        header = _sub(init, "GrpHdr")
        _sub(header, "MsgId", self.message_id)
        _sub(header, "CreDtTm", self.created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _sub(header, "NbOfTxs", str(len(self.payments)))
        _sub(header, "CtrlSum", _euros(self.total_cents))
        _sub(_sub(header, "InitgPty"), "Nm", sepa_text(self.debtor.name, 70))
        info = _sub(init, "PmtInf")
        _sub(info, "PmtInfId", self.message_id)
        _sub(info, "PmtMtd", "TRF")
        _sub(info, "BtchBookg", "true")
        _sub(info, "NbOfTxs", str(len(self.payments)))
        _sub(info, "CtrlSum", _euros(self.total_cents))
        _sub(_sub(_sub(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
        _sub(info, "ReqdExctnDt", self.execution_date.isoformat())
        _sub(_sub(info, "Dbtr"), "Nm", sepa_text(self.debtor.name, 70))
        _sub(_sub(_sub(info, "DbtrAcct"), "Id"), "IBAN", self.debtor.iban)
        _agent(_sub(info, "DbtrAgt"), self.debtor.bic)
        _sub(info, "ChrgBr", "SLEV")
        for p in self.payments:
            tx = _sub(info, "CdtTrfTxInf")
            _sub(_sub(tx, "PmtId"), "EndToEndId", p.end_to_end_id)
            amount = _sub(_sub(tx, "Amt"), "InstdAmt", _euros(p.amount_cents))
            amount.set("Ccy", "EUR")
            if p.account.bic:
                _agent(_sub(tx, "CdtrAgt"), p.account.bic)
            _sub(_sub(tx, "Cdtr"), "Nm", sepa_text(p.account.name, 70))
            _sub(_sub(_sub(tx, "CdtrAcct"), "Id"), "IBAN", p.account.iban)
            _sub(_sub(tx, "RmtInf"), "Ustrd", sepa_text(p.remittance, 140))
        ET.indent(doc, space="  ")
        data: bytes = ET.tostring(doc, encoding="UTF-8", xml_declaration=True)
        return data + b"\n"


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _q(tag))
    if text is not None:
        element.text = text
    return element


def _agent(parent: ET.Element, bic: str | None) -> None:
    institution = _sub(parent, "FinInstnId")
    if bic:
        _sub(institution, "BIC", bic)
    else:
        _sub(_sub(institution, "Othr"), "Id", "NOTPROVIDED")


def _euros(cents: int) -> str:
    whole, rest = divmod(cents, 100)
    return f"{whole}.{rest:02d}"


def payment_batch(
    ledger: KassierLedger,
    debtor: BankAccount,
    accounts: Mapping[int, BankAccount],
    *,
    message_id: str,
    created_at: dt.datetime,
    execution_date: dt.date,
    remittance: str,
) -> PaymentBatch:
    """Pay every sub-provider the kassier owes a positive balance, one transfer each, to the
    cent of the ledger. Every account is checked first; if any is wrong nothing is made and
    :class:`InvalidBankAccount` names all of them (mod-97 and country format via schwifty)."""
    owed = {pid: cents for pid, cents in ledger.owes.items() if cents > 0}
    bad: list[str] = []
    try:
        debtor = check_account(debtor)
    except ValueError:
        bad.append(debtor.name)
    checked: dict[int, BankAccount] = {}
    for pid in owed:
        account = accounts.get(pid)
        if account is None:
            bad.append(f"#{pid}")
            continue
        try:
            checked[pid] = check_account(account)
        except ValueError:
            bad.append(account.name)
    if bad:
        raise InvalidBankAccount(names=", ".join(sorted(bad)))
    if len(message_id) > 35:
        raise ValueError("a SEPA message id has at most 35 characters")
    payments = tuple(
        Payment(
            provider_id=pid,
            account=checked[pid],
            amount_cents=cents,
            end_to_end_id=f"{message_id[:26]}-{pid}"[:35],
            remittance=remittance,
        )
        for pid, cents in sorted(owed.items())
    )
    set_off = {pid: cents for pid, cents in ledger.owes.items() if cents < 0}
    return PaymentBatch(message_id, created_at, execution_date, debtor, payments, set_off)
