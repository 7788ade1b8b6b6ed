"""The kassier's side of a closed quarter (kassiersadministratie per kwartaal): the ledger of
every kassier in an immutable run, and the payment batch (betaalopdracht) to its
sub-providers as SEPA XML. Inside the caller's unit of work; never commits.

Everything is built from the run's own lines, the sub-provider agreements and the bank
accounts valid on the execution date, and dated from the run, never from the clock: the same
run gives the same bytes, however often it is downloaded. A problem that would make a broken
or wrong file (a provider without an account) is shown instead of a file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select

from keerpunt.platform import audit
from keerpunt.platform.errors import DomainError, NotFound
from keerpunt.platform.i18n import AMSTERDAM, N_
from keerpunt.platform.models import Organisation, OrgKind, StaffRole
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.bank_accounts import accounts_valid_on, display_iban
from keerpunt.settlement.declaration import (
    Margin,
    OutLine,
    SubProviderAgreement,
)
from keerpunt.settlement.kassier import (
    KassierLedger,
    MissingAgreement,
    kassier_ledger,
    ledger_from_margins,
)
from keerpunt.settlement.models import SettlementRun, SettlementRunLine
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.records import load_agreements
from keerpunt.settlement.rules import BAD_DATE, DateRange, Quarter, parse_date, parse_quarter
from keerpunt.settlement.runs import (
    MARGIN_COLUMNS,
    RUN_LINE_COLUMNS,
    StoredMargin,
    run_line,
    stored_margin,
)
from keerpunt.settlement.sepa import InvalidBankAccount, PaymentBatch, payment_batch

__all__ = [
    "ClosedQuarter",
    "InvalidExecutionDate",
    "KassierPage",
    "KassierView",
    "PaymentBatchBlocked",
    "PaymentFile",
    "PaymentProblem",
    "ProviderShare",
    "check_execution_date",
    "execution_date",
    "kassier_page",
    "kassier_quarters",
    "payment_file",
]

NO_ACCOUNT = N_(
    "%(name)s heeft geen bankrekening die geldig is op %(day)s. Vraag %(name)s om die in te "
    "vullen op de pagina Bankrekeningen, of vul hem zelf in. Daarna kunt u de betaalopdracht "
    "maken."
)
KASSIER_NO_ACCOUNT = N_(
    "De kassier %(name)s heeft geen eigen bankrekening die geldig is op %(day)s. Van die "
    "rekening wordt betaald. Vul hem in op de pagina Bankrekeningen."
)
BAD_ACCOUNT = N_(
    "Het rekeningnummer (IBAN) of de BIC van %(name)s klopt niet. Pas het aan op de pagina "
    "Bankrekeningen."
)
NO_AGREEMENT = N_(
    "Voor een regel van %(name)s is geen afspraak over de opslag van de kassier. Zonder die "
    "afspraak is niet uit te rekenen wat de kassier moet betalen. Leg de afspraak vast."
)


DATE_TOO_EARLY = N_(
    "Kies een uitvoerdatum na de dag waarop het kwartaal is afgesloten. De vroegste datum "
    "staat bij het veld."
)
DATE_NOT_WORKDAY = N_("Kies een werkdag (maandag tot en met vrijdag): dan betaalt de bank.")
DATE_TOO_LATE = N_("Kies een uitvoerdatum binnen een jaar na de vroegste datum.")


class InvalidExecutionDate(DomainError):
    """A chosen execution date the bank cannot use; ``message`` says why."""

    status_code = 400


class PaymentBatchBlocked(DomainError):
    status_code = 409
    message = N_(
        "De betaalopdracht kan nog niet worden gemaakt. Op de kassierspagina staat wat eerst "
        "moet gebeuren."
    )


@dataclass(frozen=True)
class ProviderShare:
    """One provider's part of a kassier's ledger: what its lines bring in (``gross``), what the
    kassier keeps of them and what it owes the provider. For the kassier's own lines the
    kassier keeps all."""

    provider_id: int
    name: str
    own: bool
    margins: tuple[Margin, ...]  # the agreements that applied in the quarter
    gross_cents: int
    margin_cents: int
    net_cents: int


@dataclass(frozen=True)
class MunicipalityShare:
    name: str
    cents: int


@dataclass(frozen=True)
class Transfer:
    name: str
    iban: str  # grouped for reading
    cents: int


@dataclass(frozen=True)
class SetOff:
    """A provider whose lines add up to a credit: it owes the kassier; not paid, set off."""

    name: str
    cents: int  # what the provider owes the kassier (positive)


@dataclass(frozen=True)
class PaymentProblem:
    message: str  # message id with %(name)s and %(day)s
    name: str
    day: dt.date


@dataclass(frozen=True)
class KassierView:
    kassier_id: int
    name: str
    shares: tuple[ProviderShare, ...]
    municipalities: tuple[MunicipalityShare, ...]
    municipality_cents: int  # what the municipalities owe the kassier
    keeps_cents: int
    owes_cents: int  # what the kassier owes its sub-providers, net
    balanced: bool
    complete: bool  # False: a line had no agreement, so there is no ledger to show
    execution_date: dt.date
    transfers: tuple[Transfer, ...]
    set_off: tuple[SetOff, ...]
    problems: tuple[PaymentProblem, ...]

    @property
    def transfer_cents(self) -> int:
        return sum(t.cents for t in self.transfers)

    @property
    def can_download(self) -> bool:
        return not self.problems and bool(self.transfers)


@dataclass(frozen=True)
class KassierPage:
    quarter: Quarter
    closed_at: dt.datetime
    kassiers: tuple[KassierView, ...]
    execution_date: dt.date  # the one used on the page
    earliest_date: dt.date  # the first working day after closing: the default
    date_error: str | None  # message id: the chosen date could not be used
    # True: the run closed before margins were stored with it; they are worked out with the
    # agreements of today, and the page says so.
    margins_of_today: bool = False


@dataclass(frozen=True)
class PaymentFile:
    filename: str
    data: bytes


def execution_date(closed_at: dt.datetime) -> dt.date:
    """The day the kassier's bank pays (ReqdExctnDt): the first working day (Monday to Friday)
    after the day the run closed, in Amsterdam. Derived from the run, so it never moves."""
    day = closed_at.astimezone(AMSTERDAM).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def check_execution_date(chosen: dt.date, earliest: dt.date) -> str | None:
    """Why the bank cannot pay on ``chosen`` (a message id), or None: not before the first
    working day after closing, on a working day, and within a year of that."""
    if chosen < earliest:
        return DATE_TOO_EARLY
    if chosen.weekday() >= 5:
        return DATE_NOT_WORKDAY
    if chosen > earliest + dt.timedelta(days=366):
        return DATE_TOO_LATE
    return None


def _pay_day(run: SettlementRun, requested: str) -> tuple[dt.date, dt.date, str | None]:
    """The execution date to use, the earliest one, and why the requested one is refused."""
    earliest = execution_date(run.closed_at)
    if not requested:
        return earliest, earliest, None
    chosen = parse_date(requested)
    why = BAD_DATE if chosen is None else check_execution_date(chosen, earliest)
    if why is not None or chosen is None:
        return earliest, earliest, why
    return chosen, earliest, None


async def _visible(uow: UnitOfWork) -> int | None:
    """Which kassier the viewer may see: None for all (the penvoerder's finance staff), else
    its own organisation, for a provider's finance staff. Anyone else is told the page does
    not exist, a municipality's finance staff too: the municipality pays the kassier the total
    it declares; what the kassier keeps and pays on to each provider is the providers' own
    settlement (kassiersmodel)."""
    who = uow.who
    if not who.has(StaffRole.FINANCE) or who.organisation_id is None:
        raise NotFound()
    org = await uow.db.get(Organisation, who.organisation_id)
    if org is None:
        raise NotFound()
    if org.is_penvoerder:
        return None
    if org.kind != OrgKind.PROVIDER:
        raise NotFound()
    return org.id


def _share_margins(
    agreements: Iterable[SubProviderAgreement], kassier_id: int, provider_id: int, q: Quarter
) -> tuple[Margin, ...]:
    return tuple(
        g.margin
        for g in sorted(agreements, key=lambda g: g.valid_from)
        if g.kassier_id == kassier_id
        and g.provider_id == provider_id
        and DateRange(g.valid_from, g.valid_to or dt.date.max).clip(q.period) is not None
    )


async def _run(uow: UnitOfWork, quarter: Quarter) -> SettlementRun:
    run = await uow.db.scalar(select(SettlementRun).where(SettlementRun.quarter == quarter.code))
    if run is None:
        raise NotFound()
    return run


Lines = list[tuple[OutLine, StoredMargin | None]]


@dataclass(frozen=True)
class _Split:
    """A kassier's ledger (None: a sub-provider's line had no agreement), the providers whose
    lines had none, and per provider the margins agreed that applied."""

    ledger: KassierLedger | None
    missing: tuple[int, ...]
    margins: dict[int, tuple[Margin, ...]]


def _stored_split(kid: int, lines: Lines) -> _Split:
    """From the margins stored when the run closed: the agreements of today play no part."""
    try:
        ledger: KassierLedger | None = ledger_from_margins(
            kid, ((x, None if m is None else m.margin_cents) for x, m in lines)
        )
    except MissingAgreement:
        ledger = None
    missing = sorted({x.provider_id for x, m in lines if x.provider_id != kid and m is None})
    first: dict[int, dict[Margin, dt.date]] = {}
    for x, m in lines:
        if m is not None and m.margin is not None:
            seen = first.setdefault(x.provider_id, {})
            seen[m.margin] = min(seen.get(m.margin, x.start), x.start)
    margins = {
        p: tuple(sorted(seen, key=lambda g: (seen[g], g.kind.value, g.value)))
        for p, seen in first.items()
    }
    return _Split(ledger, tuple(missing), margins)


def _split_of_today(
    kid: int, lines: Lines, agreements: list[SubProviderAgreement], quarter: Quarter
) -> _Split:
    """For a run closed before margins were stored: with the agreements of today."""
    plain = [x for x, _m in lines]
    providers = {x.provider_id for x in plain} - {kid}
    margins = {p: _share_margins(agreements, kid, p, quarter) for p in providers}
    try:
        return _Split(kassier_ledger(kid, plain, agreements), (), margins)
    except MissingAgreement:
        covered = {
            x.provider_id
            for x in plain
            if x.provider_id == kid
            or any(
                g.kassier_id == kid and g.provider_id == x.provider_id
                and g.covers(DateRange(x.start, x.end))
                for g in agreements
            )
        }  # fmt: skip
        missing = sorted({x.provider_id for x in plain} - covered)
        return _Split(None, tuple(missing), margins)


async def _views(
    uow: UnitOfWork, run: SettlementRun, quarter: Quarter, only: int | None, pay_day: dt.date
) -> list[tuple[KassierView, PaymentBatch | None]]:
    # Who is a kassier here: a holder with lines others delivered, or with sub-providers
    # (agreements) when the run closed — its own lines then carry a stored margin. Asked of
    # the database, so a national-scale run loads only the kassiers' lines. A run closed
    # before margins were stored can only go by the agreements of today.
    of_run = SettlementRunLine.run_id == run.id
    L = SettlementRunLine
    agreements: list[SubProviderAgreement] | None = None
    if run.margins_stored:
        kassier_ids = set(
            await uow.db.scalars(
                select(L.holder_id)
                .where(of_run, or_(L.provider_id != L.holder_id, L.margin_cents.is_not(None)))
                .distinct()
            )
        )
    else:
        agreements = await load_agreements(uow)
        holders = set(await uow.db.scalars(select(L.holder_id).where(of_run).distinct()))
        kassier_ids = set(
            await uow.db.scalars(
                select(L.holder_id).where(of_run, L.provider_id != L.holder_id).distinct()
            )
        )
        kassier_ids |= {g.kassier_id for g in agreements} & holders
    if only is not None:
        if only not in kassier_ids:
            raise NotFound()
        kassier_ids = {only}
    n = len(RUN_LINE_COLUMNS)
    lines: Lines = (
        [
            (run_line(r[:n]), stored_margin(r[n:]))
            for r in await uow.db.execute(
                select(*RUN_LINE_COLUMNS, *MARGIN_COLUMNS)
                .where(of_run, L.holder_id.in_(kassier_ids))
                .order_by(L.seq)
            )
        ]
        if kassier_ids
        else []
    )
    org_ids = {x.provider_id for x, _m in lines} | {x.municipality_id for x, _m in lines}
    org_ids |= kassier_ids
    names: dict[int, str] = {
        i: n
        for i, n in await uow.db.execute(
            select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
        )
    }
    per_kassier: dict[int, Lines] = {kid: [] for kid in kassier_ids}
    for x, m in lines:
        per_kassier[x.holder_id].append((x, m))
    out: list[tuple[KassierView, PaymentBatch | None]] = []
    for kid, mine in per_kassier.items():
        split = (
            _stored_split(kid, mine)
            if agreements is None
            else _split_of_today(kid, mine, agreements, quarter)
        )
        out.append(await _view(uow, run, quarter, kid, split, names, pay_day))
    out.sort(key=lambda v: (v[0].name.casefold(), v[0].kassier_id))
    return out


async def _view(
    uow: UnitOfWork,
    run: SettlementRun,
    quarter: Quarter,
    kid: int,
    split: _Split,
    names: dict[int, str],
    pay_day: dt.date,
) -> tuple[KassierView, PaymentBatch | None]:
    name = names.get(kid, "")
    problems: list[PaymentProblem] = []
    missing_agreement = split.ledger is None
    ledger = KassierLedger(kid, ()) if split.ledger is None else split.ledger
    if missing_agreement:
        problems = [PaymentProblem(NO_AGREEMENT, names.get(p, ""), pay_day) for p in split.missing]
    # The ledger's totals are computed on each access: read each once.
    municipality_owes, owes, keeps = ledger.municipality_owes, ledger.owes, ledger.keeps_cents
    shares = _shares(ledger, kid, names, split.margins)
    municipalities = tuple(
        sorted(
            (MunicipalityShare(names.get(m, ""), c) for m, c in municipality_owes.items()),
            key=lambda s: s.name.casefold(),
        )
    )
    owed = {p: c for p, c in owes.items() if c > 0}
    accounts = await accounts_valid_on(uow, [kid, *owed], pay_day)
    if not problems:
        if kid not in accounts and owed:
            problems.append(PaymentProblem(KASSIER_NO_ACCOUNT, name, pay_day))
        problems += [
            PaymentProblem(NO_ACCOUNT, names.get(p, ""), pay_day)
            for p in sorted(owed, key=lambda p: names.get(p, "").casefold())
            if p not in accounts
        ]
    batch: PaymentBatch | None = None
    if not problems and owed:
        try:
            batch = payment_batch(
                ledger,
                accounts[kid],
                accounts,
                message_id=f"KP-{quarter.code}-{kid}-{run.digest[:12]}",
                created_at=run.closed_at,
                execution_date=pay_day,
                remittance=f"Keerpunt afrekening {quarter.year}K{quarter.q} {name}",
            )
        except InvalidBankAccount as exc:
            bad = str(exc.params.get("names", ""))
            problems.append(PaymentProblem(BAD_ACCOUNT, bad, pay_day))
    transfers = (
        tuple(
            Transfer(names.get(p.provider_id, ""), display_iban(p.account.iban), p.amount_cents)
            for p in batch.payments
        )
        if batch
        else ()
    )
    set_off = tuple(
        SetOff(names.get(p, ""), -c)
        for p, c in owes.items()
        if c < 0
    )  # fmt: skip
    view = KassierView(
        kassier_id=kid,
        name=name,
        shares=shares,
        municipalities=municipalities,
        municipality_cents=sum(municipality_owes.values()),
        keeps_cents=keeps,
        owes_cents=sum(owes.values()),
        balanced=sum(municipality_owes.values()) == keeps + sum(owes.values()),
        complete=not missing_agreement,
        execution_date=pay_day,
        transfers=transfers,
        set_off=set_off,
        problems=tuple(problems),
    )
    return view, batch


def _shares(
    ledger: KassierLedger,
    kid: int,
    names: dict[int, str],
    margins: dict[int, tuple[Margin, ...]],
) -> tuple[ProviderShare, ...]:
    totals: dict[int, list[int]] = {}
    for e in ledger.entries:
        t = totals.setdefault(e.provider_id, [0, 0, 0])
        t[0] += e.gross_cents
        t[1] += e.margin_cents
        t[2] += e.net_cents if e.provider_id != kid else 0
    shares = [
        ProviderShare(
            provider_id=p,
            name=names.get(p, ""),
            own=p == kid,
            margins=() if p == kid else margins.get(p, ()),
            gross_cents=g,
            margin_cents=m,
            net_cents=n,
        )
        for p, (g, m, n) in totals.items()
    ]
    return tuple(sorted(shares, key=lambda s: (not s.own, s.name.casefold(), s.provider_id)))


async def kassier_page(uow: UnitOfWork, quarter: Quarter, requested: str = "") -> KassierPage:
    """The ledger of every kassier in a closed quarter the viewer may see — the penvoerder's
    finance staff all of them, a kassier's finance staff their own — with what each payment
    batch would pay on the execution date (``requested``, or the first working day after
    closing), set off, or what stops it. Not found for anyone else, or before the quarter is
    closed."""
    only = await _visible(uow)
    run = await _run(uow, quarter)
    pay_day, earliest, why = _pay_day(run, requested)
    views = await _views(uow, run, quarter, only, pay_day)
    return KassierPage(
        quarter,
        run.closed_at,
        tuple(v for v, _b in views),
        pay_day,
        earliest,
        why,
        margins_of_today=bool(views) and not run.margins_stored,
    )


async def payment_file(
    uow: UnitOfWork, quarter: Quarter, kassier_id: int, requested: str = ""
) -> PaymentFile:
    """The kassier's payment batch of a closed quarter as SEPA pain.001.001.03 (betaalopdracht):
    message id and creation time come from the run, so the same run and execution date give
    the same bytes every time. Refused while a problem stands. Every download is audited."""
    only = await _visible(uow)
    if only is not None and only != kassier_id:
        raise NotFound()
    run = await _run(uow, quarter)
    pay_day, _earliest, why = _pay_day(run, requested)
    if why is not None:
        raise InvalidExecutionDate(why)
    ((view, batch),) = await _views(uow, run, quarter, kassier_id, pay_day)
    if batch is None or not view.can_download:
        raise PaymentBatchBlocked()
    data = batch.to_xml()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.kassier.payment_batch",
        purpose="settlement",
        detail=(
            f"run={run.id} quarter={quarter.code} kassier={kassier_id} date={pay_day} "
            f"payments={len(batch.payments)} total_cents={batch.total_cents} "
            f"sha256={hashlib.sha256(data).hexdigest()}"
        ),
    )
    return PaymentFile(f"betaalopdracht-{quarter.code}-{kassier_id}.xml", data)


@dataclass(frozen=True)
class ClosedQuarter:
    quarter: Quarter
    closed_at: dt.datetime


async def kassier_quarters(uow: UnitOfWork) -> tuple[ClosedQuarter, ...]:
    """The closed quarters with a kassier ledger the viewer may see, newest first."""
    only = await _visible(uow)
    query = select(SettlementRun).order_by(SettlementRun.closed_at.desc(), SettlementRun.id.desc())
    if only is not None:
        is_kassier = await uow.db.scalar(
            select(AgreementRow.id).where(AgreementRow.kassier_id == only).limit(1)
        )
        L = SettlementRunLine
        # A kassier in a run: lines others delivered under it, or (its own lines carry a
        # stored margin) agreements when the run closed. Runs closed before margins were
        # stored go by the agreements of today, as their kassier page does.
        kassier_line = or_(L.provider_id != only, L.margin_cents.is_not(None))
        if is_kassier is not None:
            unstored = select(SettlementRun.id).where(SettlementRun.margins_stored.is_(False))
            kassier_line = or_(kassier_line, L.run_id.in_(unstored))
        holds = select(L.run_id).where(L.holder_id == only, kassier_line)
        query = query.where(SettlementRun.id.in_(holds))
    return tuple(
        ClosedQuarter(parse_quarter(r.quarter), r.closed_at) for r in await uow.db.scalars(query)
    )
