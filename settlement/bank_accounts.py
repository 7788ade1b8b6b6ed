"""Payment accounts (bankrekeningen) of organisations: recorded with the day they start, never
overwritten, so every payment batch can be traced to the account valid on its execution date.

An organisation's finance staff record their own account; the penvoerder's finance staff may
record one for any provider. The IBAN is checked with ``schwifty`` (country format, mod-97
check digits, SEPA zone) and a wrong one is refused with a message that says what is wrong.
Inside the caller's unit of work; never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schwifty import BIC, IBAN
from schwifty.exceptions import (
    InvalidChecksumDigits,
    InvalidCountryCode,
    InvalidLength,
    SchwiftyException,
)
from sqlalchemy import select

from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Organisation, OrgKind, StaffRole
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement import sepa
from keerpunt.settlement.models import BankAccount as BankAccountRow
from keerpunt.settlement.rules import BAD_DATE, parse_date

__all__ = [
    "BANK_ACCOUNT_FIELDS",
    "BankAccountDraft",
    "BankAccountView",
    "BankAccountsPage",
    "OrganisationAccounts",
    "accounts_valid_on",
    "bank_accounts_page",
    "check_iban",
    "display_iban",
    "read_bank_account_form",
    "record_bank_account",
]

BANK_ACCOUNT_FIELDS = ("organisation_id", "holder_name", "iban", "bic", "valid_from")

IBAN_EMPTY = N_("Vul het IBAN in, bijvoorbeeld NL91 ABNA 0417 1643 00.")
IBAN_CHECK_DIGITS = N_(
    "De controlecijfers van dit IBAN kloppen niet. Waarschijnlijk is er een cijfer verkeerd "
    "overgenomen. Kijk het nummer na op een bankafschrift."
)
IBAN_LENGTH = N_(
    "Dit IBAN heeft te veel of te weinig tekens. Een Nederlands IBAN heeft er 18, "
    "bijvoorbeeld NL91 ABNA 0417 1643 00."
)
IBAN_COUNTRY = N_("Dit IBAN begint niet met een bekende landcode, zoals NL.")
IBAN_OTHER = N_(
    "Dit is geen geldig IBAN. Een Nederlands IBAN ziet er zo uit: NL91 ABNA 0417 1643 00."
)
IBAN_NOT_SEPA = N_(
    "Dit IBAN is van een bank buiten het SEPA-gebied. Daar kan de kassier niet naar betalen."
)
BIC_WRONG = N_("Deze BIC klopt niet. Een BIC heeft 8 of 11 tekens, bijvoorbeeld ABNANL2A.")
BIC_NEEDED = N_("Vul de BIC van de bank in. Die is bij dit IBAN niet automatisch te vinden.")
HOLDER_EMPTY = N_("Vul de naam in waarop de rekening staat.")
HOLDER_LONG = N_("De naam is te lang. Gebruik hoogstens 70 tekens, zoals op het bankafschrift.")
ORGANISATION_CHOOSE = N_("Kies een organisatie.")


def check_iban(raw: str) -> tuple[str | None, str | None]:
    """The IBAN in compact form, or the reason it is wrong (a message id): country format and
    check digits (mod 97) via schwifty, and a country in the SEPA zone."""
    if not raw.strip():
        return None, IBAN_EMPTY
    try:
        iban = IBAN(raw)
    except InvalidChecksumDigits:
        return None, IBAN_CHECK_DIGITS
    except InvalidLength:
        return None, IBAN_LENGTH
    except InvalidCountryCode:
        return None, IBAN_COUNTRY
    except SchwiftyException:
        return None, IBAN_OTHER
    if not iban.in_sepa_zone:
        return None, IBAN_NOT_SEPA
    return iban.compact, None


def display_iban(iban: str) -> str:
    """In groups of four, as on a bank card: NL91 ABNA 0417 1643 00."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


@dataclass(frozen=True)
class BankAccountDraft:
    """A checked account from the form; ``organisation_id`` None means the viewer's own."""

    organisation_id: int | None
    holder_name: str
    iban: str
    bic: str | None
    valid_from: dt.date


def read_bank_account_form(values: Mapping[str, str]) -> BankAccountDraft:
    """The form's fields checked all at once; every wrong field gets its own message. An empty
    BIC is looked up from the IBAN (schwifty's bank registry) and asked for only when unknown."""
    errors: dict[str, str] = {}
    raw_org = values.get("organisation_id", "")
    organisation_id = int(raw_org) if raw_org.isdecimal() else None
    if raw_org and organisation_id is None:
        errors["organisation_id"] = ORGANISATION_CHOOSE
    holder = " ".join(values.get("holder_name", "").split())
    if not holder:
        errors["holder_name"] = HOLDER_EMPTY
    elif len(holder) > 70:
        errors["holder_name"] = HOLDER_LONG
    iban, why = check_iban(values.get("iban", ""))
    if why:
        errors["iban"] = why
    bic: str | None = None
    raw_bic = "".join(values.get("bic", "").split()).upper()
    if raw_bic:
        try:
            bic = BIC(raw_bic).compact
        except SchwiftyException:
            errors["bic"] = BIC_WRONG
    elif iban is not None:
        derived = IBAN(iban).bic
        if derived is None:
            errors["bic"] = BIC_NEEDED
        else:
            bic = derived.compact
    valid_from = parse_date(values.get("valid_from", ""))
    if valid_from is None:
        errors["valid_from"] = BAD_DATE
    if errors:
        raise InvalidInput(errors)
    assert iban is not None and valid_from is not None
    return BankAccountDraft(organisation_id, holder, iban, bic, valid_from)


async def _access(uow: UnitOfWork) -> tuple[Organisation, bool]:
    """The viewer's organisation, and whether it is the penvoerder (records for any provider).
    Only finance staff record accounts: of a provider, for their own organisation."""
    who = uow.who
    if not who.has(StaffRole.FINANCE) or who.organisation_id is None:
        raise NotAllowed()
    org = await uow.db.get(Organisation, who.organisation_id)
    if org is None:
        raise NotAllowed()
    if org.is_penvoerder:
        return org, True
    if org.kind != OrgKind.PROVIDER:
        raise NotAllowed()
    return org, False


@dataclass(frozen=True)
class BankAccountView:
    id: int
    holder_name: str
    iban: str  # grouped for reading
    bic: str | None
    valid_from: dt.date
    valid_until: dt.date | None  # inclusive; None while it is the latest
    replaced: bool  # a later record starts the same day: this one never applied
    recorded_at: dt.datetime


@dataclass(frozen=True)
class OrganisationAccounts:
    id: int
    name: str
    current: BankAccountView | None  # valid today
    history: tuple[BankAccountView, ...]  # newest first


@dataclass(frozen=True)
class BankAccountsPage:
    organisations: tuple[OrganisationAccounts, ...]
    chooses_organisation: bool  # the penvoerder records for any provider


def _timeline(
    rows: list[BankAccountRow], today: dt.date
) -> tuple[BankAccountView | None, tuple[BankAccountView, ...]]:
    """The account valid today, and every row (newest first) with the period it applied;
    ``rows`` oldest first."""
    views: list[BankAccountView] = []
    current: BankAccountView | None = None
    for i, row in enumerate(rows):
        later = [r for r in rows[i + 1 :] if r.valid_from >= row.valid_from]
        replaced = any(r.valid_from == row.valid_from for r in later)
        nxt = next((r.valid_from for r in later if r.valid_from > row.valid_from), None)
        view = BankAccountView(
            id=row.id,
            holder_name=row.holder_name,
            iban=display_iban(row.iban),
            bic=row.bic,
            valid_from=row.valid_from,
            valid_until=nxt - dt.timedelta(days=1) if nxt else None,
            replaced=replaced,
            recorded_at=row.created_at,
        )
        views.append(view)
        if not replaced and row.valid_from <= today and (nxt is None or nxt > today):
            current = view
    return current, tuple(reversed(views))


async def bank_accounts_page(uow: UnitOfWork, today: dt.date) -> BankAccountsPage:
    """The accounts the viewer may see and record: its own organisation's, or for the
    penvoerder every provider's, each with the one valid today and every earlier change."""
    org, sees_all = await _access(uow)
    if sees_all:
        orgs = list(
            await uow.db.scalars(
                select(Organisation)
                .where(Organisation.kind == OrgKind.PROVIDER)
                .order_by(Organisation.name)
            )
        )
    else:
        orgs = [org]
    rows = list(
        await uow.db.scalars(
            select(BankAccountRow)
            .where(BankAccountRow.organisation_id.in_([o.id for o in orgs]))
            .order_by(BankAccountRow.valid_from, BankAccountRow.id)
        )
    )
    out = []
    for o in orgs:
        current, history = _timeline([r for r in rows if r.organisation_id == o.id], today)
        out.append(OrganisationAccounts(o.id, o.name, current, history))
    return BankAccountsPage(tuple(out), sees_all)


async def record_bank_account(uow: UnitOfWork, values: Mapping[str, str]) -> BankAccountView:
    """Record an organisation's payment account from ``valid_from`` on (a change is a new
    record; the old one stays in the history). Audited. Who may is checked before the form."""
    org, sees_all = await _access(uow)
    draft = read_bank_account_form(values)
    if sees_all:
        if draft.organisation_id is None:
            raise InvalidInput({"organisation_id": ORGANISATION_CHOOSE})
        owner = await uow.db.get(Organisation, draft.organisation_id)
        if owner is None or owner.kind != OrgKind.PROVIDER:
            raise InvalidInput({"organisation_id": ORGANISATION_CHOOSE})
    else:
        if draft.organisation_id not in (None, org.id):
            raise NotAllowed()
        owner = org
    row = BankAccountRow(
        organisation_id=owner.id,
        iban=draft.iban,
        bic=draft.bic,
        holder_name=draft.holder_name,
        valid_from=draft.valid_from,
        created_by_id=uow.who.user_id,
    )
    uow.db.add(row)
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.bank_account.add",
        purpose="settlement",
        detail=(
            f"bank_account={row.id} organisation={owner.id} iban={row.iban} "
            f"bic={row.bic or ''} from={row.valid_from}"
        ),
    )
    return BankAccountView(
        row.id,
        row.holder_name,
        display_iban(row.iban),
        row.bic,
        row.valid_from,
        None,
        False,
        row.created_at,
    )


async def accounts_valid_on(
    uow: UnitOfWork, organisation_ids: Iterable[int], day: dt.date
) -> dict[int, sepa.BankAccount]:
    """Per organisation the account valid on ``day``: the latest start on or before it, and of
    two starting the same day the one recorded last. Organisations without one are missing."""
    ids = list(organisation_ids)
    if not ids:
        return {}
    rows = await uow.db.scalars(
        select(BankAccountRow)
        .where(BankAccountRow.organisation_id.in_(ids), BankAccountRow.valid_from <= day)
        .order_by(BankAccountRow.valid_from, BankAccountRow.id)
    )
    return {r.organisation_id: sepa.BankAccount(r.holder_name, r.iban, r.bic) for r in rows}
