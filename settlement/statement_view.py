"""A provider's statement of a closed quarter (afrekenoverzicht per aanbieder) as a view
model: the web page, the PDF and the CSV all come from the same run lines.

A provider sees only its own statement; finance of the penvoerder sees every one; anyone else
gets "not found", so a guessed address tells nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import or_, select

from keerpunt.platform.errors import NotAllowed, NotFound
from keerpunt.platform.i18n import N_
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access, check_settlement_access
from keerpunt.settlement.declaration import Direction, OutLine
from keerpunt.settlement.kassier import (
    KassierLedger,
    MissingAgreement,
    kassier_ledger,
    ledger_from_margins,
)
from keerpunt.settlement.models import SettlementRun, SettlementRunLine
from keerpunt.settlement.records import load_agreements
from keerpunt.settlement.rules import UNITS, Quarter, parse_quarter
from keerpunt.settlement.runs import (
    MARGIN_COLUMNS,
    RUN_LINE_COLUMNS,
    StoredMargin,
    organisation_names,
    run_line,
    stored_margin,
)
from keerpunt.settlement.statement import statement_csv

__all__ = [
    "PAGE_SIZE",
    "KassierPart",
    "PageNotFound",
    "ProviderStatement",
    "StatementLine",
    "StatementPage",
    "own_statements",
    "provider_statement",
    "provider_statement_csv",
    "statement_page",
    "statement_providers",
]


PAGE_SIZE = 200  # lines per page of the statement on the web; the PDF and CSV are whole


class PageNotFound(NotFound):
    message = N_(
        "Deze pagina van het overzicht bestaat niet. Ga naar de eerste pagina van het "
        "overzicht en blader met Vorige en Volgende."
    )


@dataclass(frozen=True)
class StatementPage:
    """Which part of the lines a web page of the statement shows: page ``number`` of
    ``count``, lines ``first`` to ``last`` (counted from 1) of ``of``."""

    number: int
    count: int
    first: int
    last: int
    of: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


def statement_page(line_count: int, number: int) -> StatementPage:
    """Page ``number`` of a statement with ``line_count`` lines; a page that does not exist
    (0, negative, beyond the last) is not found. A statement always has a first page."""
    count = max(1, -(-line_count // PAGE_SIZE))
    if not 1 <= number <= count:
        raise PageNotFound()
    first = (number - 1) * PAGE_SIZE
    return StatementPage(number, count, first + 1, min(first + PAGE_SIZE, line_count), line_count)


@dataclass(frozen=True)
class StatementLine:
    allocation_number: str
    reference: str
    holder: str  # who declares the line (the allocation holder)
    provider: str  # who delivered
    product_category: str
    product_code: str
    start: dt.date
    end: dt.date
    volume: int
    unit: str  # the iJw code, e.g. "04"
    unit_label: str  # Dutch message id, e.g. "uur"
    tariff_cents: int
    amount_cents: int  # never negative; ``direction`` says debit or credit
    direction: str  # "D" or "C"

    @property
    def is_credit(self) -> bool:
        return self.direction == "C"

    @property
    def signed_cents(self) -> int:
        return -self.amount_cents if self.is_credit else self.amount_cents


@dataclass(frozen=True)
class KassierPart:
    """The kassier's split with one other party: ``gross`` = ``margin`` + ``net``. On the
    kassier's statement the other party is a sub-provider (net: what the kassier pays it); on
    a sub-provider's statement it is the kassier (net: what the provider receives)."""

    name: str
    gross_cents: int
    margin_cents: int
    net_cents: int


@dataclass(frozen=True)
class ProviderStatement:
    quarter: Quarter
    provider_id: int
    provider_name: str
    closed_at: dt.datetime
    digest: str  # of the whole run's statement
    lines: tuple[StatementLine, ...]  # all of them, or those of ``page``
    debit_cents: int  # totals: always of the whole statement
    credit_cents: int
    sub_providers: tuple[KassierPart, ...]  # as kassier: per sub-provider
    kassiers: tuple[KassierPart, ...]  # as sub-provider: per kassier it delivered under
    kassier_keeps_cents: int  # as kassier: margins plus its own lines
    ledger_complete: bool  # False: a line had no agreement, margins cannot be shown
    # True: the run closed before margins were stored with it; they are worked out with the
    # agreements of today, and the statement says so.
    margins_of_today: bool = False
    page: StatementPage | None = None  # None: every line (the PDF)

    @property
    def total_cents(self) -> int:
        return self.debit_cents - self.credit_cents

    @property
    def is_kassier(self) -> bool:
        return bool(self.sub_providers)

    @property
    def net_to_pay_cents(self) -> int:
        """As kassier: what it pays on to its sub-providers together."""
        return sum(p.net_cents for p in self.sub_providers)


async def _check_reader(uow: UnitOfWork, provider_id: int) -> None:
    try:
        org, sees_all = await check_settlement_access(uow)
    except NotAllowed:
        raise NotFound() from None
    if not sees_all and org.id != provider_id:
        raise NotFound()


async def _run(uow: UnitOfWork, quarter: Quarter) -> SettlementRun:
    run = await uow.db.scalar(select(SettlementRun).where(SettlementRun.quarter == quarter.code))
    if run is None:
        raise NotFound()
    return run


async def _lines_of(uow: UnitOfWork, run_id: int, provider_id: int) -> list[OutLine]:
    return [x for x, _m in await _lines_with_margins(uow, run_id, provider_id)]


async def _lines_with_margins(
    uow: UnitOfWork, run_id: int, provider_id: int
) -> list[tuple[OutLine, StoredMargin | None]]:
    n = len(RUN_LINE_COLUMNS)
    rows = await uow.db.execute(
        select(*RUN_LINE_COLUMNS, *MARGIN_COLUMNS)
        .where(
            SettlementRunLine.run_id == run_id,
            or_(
                SettlementRunLine.holder_id == provider_id,
                SettlementRunLine.provider_id == provider_id,
            ),
        )
        .order_by(SettlementRunLine.seq)
    )
    return [(run_line(r[:n]), stored_margin(r[n:])) for r in rows]


async def _ledgers(
    uow: UnitOfWork,
    run: SettlementRun,
    kassier_ids: set[int],
    lines: list[tuple[OutLine, StoredMargin | None]],
) -> dict[int, KassierLedger | None]:
    """Per kassier its ledger over these lines (None: a line had no agreement): from the
    margins stored when the run closed, or for a run closed before that, from the
    agreements of today."""
    out: dict[int, KassierLedger | None] = {}
    agreements = None if run.margins_stored else await load_agreements(uow)
    for kassier_id in sorted(kassier_ids):
        try:
            if agreements is None:
                out[kassier_id] = ledger_from_margins(
                    kassier_id, ((x, None if m is None else m.margin_cents) for x, m in lines)
                )
            else:
                out[kassier_id] = kassier_ledger(kassier_id, (x for x, _m in lines), agreements)
        except MissingAgreement:
            out[kassier_id] = None
    return out


def _parts(totals: dict[int, list[int]], names: dict[int, str]) -> tuple[KassierPart, ...]:
    return tuple(
        sorted(
            (KassierPart(names.get(k, f"#{k}"), g, m, n) for k, (g, m, n) in totals.items()),
            key=lambda p: p.name.casefold(),
        )
    )


async def provider_statement(
    uow: UnitOfWork, quarter: Quarter, provider_id: int, page: int | None = None
) -> ProviderStatement:
    """The statement of one provider in a closed quarter: every line it declared or delivered,
    debit and credit, with totals; for a kassier also its margin and what it pays on. Built
    only from the run's lines and the margins stored when it closed, so it reads the same
    every time. With ``page`` only the lines of that page (:data:`PAGE_SIZE` a page), the
    totals still of the whole statement; a page that does not exist is not found."""
    await _check_reader(uow, provider_id)
    run = await _run(uow, quarter)
    with_margins = await _lines_with_margins(uow, run.id, provider_id)
    if not with_margins:
        raise NotFound()
    lines = [x for x, _m in with_margins]
    names = await organisation_names(
        uow, {x.holder_id for x in lines} | {x.provider_id for x in lines} | {provider_id}
    )
    as_kassier: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    under_kassier: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    keeps = 0
    complete = True
    kassier_ids = {x.holder_id for x in lines if x.holder_id != x.provider_id}
    ledgers = await _ledgers(uow, run, kassier_ids, with_margins)
    for kassier_id, ledger in ledgers.items():
        if ledger is None:
            complete = False
            continue
        for e in ledger.entries:
            if kassier_id == provider_id:
                keeps += e.margin_cents
                if e.provider_id == provider_id:
                    continue
                part = as_kassier[e.provider_id]
            elif e.provider_id == provider_id:
                part = under_kassier[kassier_id]
            else:
                continue
            part[0] += e.gross_cents
            part[1] += e.margin_cents
            part[2] += e.net_cents
    shown = statement_page(len(lines), page) if page is not None else None
    return ProviderStatement(
        quarter=quarter,
        provider_id=provider_id,
        provider_name=names.get(provider_id, f"#{provider_id}"),
        closed_at=run.closed_at,
        digest=run.digest,
        lines=tuple(
            StatementLine(
                allocation_number=x.allocation_number,
                reference=x.reference,
                holder=names.get(x.holder_id, f"#{x.holder_id}"),
                provider=names.get(x.provider_id, f"#{x.provider_id}"),
                product_category=x.product_category,
                product_code=x.product_code,
                start=x.start,
                end=x.end,
                volume=x.volume,
                unit=x.unit,
                unit_label=UNITS[x.unit].label if x.unit in UNITS else x.unit,
                tariff_cents=x.tariff_cents,
                amount_cents=x.amount_cents,
                direction=x.direction.value,
            )
            for x in (lines[shown.first - 1 : shown.last] if shown else lines)
        ),
        debit_cents=sum(x.amount_cents for x in lines if x.direction is Direction.DEBIT),
        credit_cents=sum(x.amount_cents for x in lines if x.direction is Direction.CREDIT),
        sub_providers=_parts(as_kassier, names),
        kassiers=_parts(under_kassier, names),
        kassier_keeps_cents=keeps if as_kassier else 0,
        ledger_complete=complete,
        margins_of_today=bool(kassier_ids) and not run.margins_stored,
        page=shown,
    )


async def provider_statement_csv(uow: UnitOfWork, quarter: Quarter, provider_id: int) -> bytes:
    """The same statement as CSV (the run's CSV limited to this provider's lines)."""
    await _check_reader(uow, provider_id)
    run = await _run(uow, quarter)
    lines = await _lines_of(uow, run.id, provider_id)
    if not lines:
        raise NotFound()
    names = await organisation_names(
        uow, {x.holder_id for x in lines} | {x.provider_id for x in lines}
    )
    return statement_csv(quarter.code, lines, names)


async def statement_providers(uow: UnitOfWork, quarter: Quarter) -> list[tuple[int, str]]:
    """Every provider with a statement in a closed quarter (id, name), by name: for writing
    all statements at once (``keerpunt settle --pdf-dir``). Finance of the penvoerder only."""
    await check_finance_access(uow)
    run = await _run(uow, quarter)
    ids: set[int] = set()
    for holder, provider in await uow.db.execute(
        select(SettlementRunLine.holder_id, SettlementRunLine.provider_id)
        .where(SettlementRunLine.run_id == run.id)
        .distinct()
    ):
        ids |= {holder, provider}
    names = await organisation_names(uow, ids)
    return sorted(((i, names.get(i, f"#{i}")) for i in ids), key=lambda p: (p[1].casefold(), p[0]))


async def own_statements(uow: UnitOfWork) -> tuple[tuple[Quarter, int], ...]:
    """The closed quarters in which the viewer's own organisation has a statement (quarter,
    provider id), newest first: how a provider's staff find theirs. Empty for the
    penvoerder's finance staff, who reach every statement from the quarterly run."""
    org, sees_all = await check_settlement_access(uow)
    if sees_all:
        return ()
    mine = or_(SettlementRunLine.holder_id == org.id, SettlementRunLine.provider_id == org.id)
    runs = await uow.db.scalars(
        select(SettlementRun)
        .where(SettlementRun.id.in_(select(SettlementRunLine.run_id).where(mine)))
        .order_by(SettlementRun.closed_at.desc(), SettlementRun.id.desc())
    )
    return tuple((parse_quarter(r.quarter), org.id) for r in runs)
