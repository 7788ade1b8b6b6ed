"""Allocations proposed by a fixed arrangement (voorstel voor een toewijzing uit het
arrangement).

When a triage session is closed, its arrangement lines (which provider gives which help, how
much, from when until when: 9 months by default) are fixed. Each line that no allocation covers
yet is proposed as one: in the declaration model to the provider that delivers, in the kassier
model to the kassier the provider is registered with. Finance of the penvoerder, or the holder
itself, confirms it (adjusting what the municipality decided otherwise) with the number the
municipality gave; that records the allocation, linked to the line, audited.

The rules are pure (:func:`holder_for`, :func:`prefill`, :func:`is_covered`); triage is read
only through its service.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import select

from keerpunt.platform.errors import InvalidInput, NotAllowed
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Case, Organisation, OrgKind, StaffRole
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_settlement_access
from keerpunt.settlement.declaration import Allocation, SubProviderAgreement
from keerpunt.settlement.imports import read_allocation_fields
from keerpunt.settlement.models import Allocation as AllocationRow
from keerpunt.settlement.models import Contract
from keerpunt.settlement.models import SubProviderAgreement as AgreementRow
from keerpunt.settlement.records import (
    allocation_terms,
    contract_terms,
    store_allocation,
    sub_provider_terms,
)
from keerpunt.settlement.rules import UNITS, ContractTerms, DateRange
from keerpunt.triage import service as triage

__all__ = [
    "PROPOSAL_FIELDS",
    "Proposal",
    "ProposalDraft",
    "allocation_proposals",
    "confirm_proposal",
    "holder_for",
    "is_covered",
    "prefill",
    "proposal_form",
    "read_proposal_form",
]

PROPOSAL_FIELDS = (
    "line_id",
    "number",
    "provider_id",
    "municipality_id",
    "variant",
    "product_category",
    "product_code",
    "volume",
    "unit",
    "frequency",
    "budget",
    "start",
    "end",
)


class ArrangementLine(Protocol):
    """What a proposal needs of a fixed arrangement line (non-personal by design)."""

    @property
    def line_id(self) -> int: ...
    @property
    def case_id(self) -> int: ...
    @property
    def provider_id(self) -> int: ...
    @property
    def product_code(self) -> str: ...
    @property
    def minutes_per_week(self) -> int: ...
    @property
    def start_date(self) -> dt.date: ...
    @property
    def end_date(self) -> dt.date: ...
    @property
    def intensity_unit(self) -> str: ...
    @property
    def units_per_week(self) -> int | None: ...


# ---- the rules (pure) ----


def holder_for(provider_id: int, day: dt.date, agreements: Iterable[SubProviderAgreement]) -> int:
    """Who holds the allocation for a provider's line starting on ``day``: the kassier the
    provider is registered with as sub-provider (kassier model; the lowest id when there are
    several, finance can change it), otherwise the provider itself (declaration model)."""
    kassiers = sorted(
        g.kassier_id
        for g in agreements
        if g.provider_id == provider_id and g.covers(DateRange(day, day))
    )
    return kassiers[0] if kassiers else provider_id


def is_covered(line: ArrangementLine, holder_id: int, allocations: Iterable[Allocation]) -> bool:
    """Whether an allocation for the line exists already: one for the same case and holder
    whose period shares a day with the line and under which its product could be declared
    (the same product, its category, or any product), confirmed from this proposal, imported
    or entered otherwise."""
    period = DateRange(line.start_date, max(line.start_date, line.end_date))
    code = line.product_code.strip().upper()

    def fits(a: Allocation) -> bool:  # as a delivery of the product would fit it
        if a.product_code is not None:
            return a.product_code == code
        return a.product_category is None or a.product_category == code[:2]

    return any(
        a.case_id == line.case_id
        and a.provider_id == holder_id
        and fits(a)
        and a.period.clip(period) is not None
        for a in allocations
    )


# A stated intensity's own iJw unit, when the holder has no contract for the product.
_INTENSITY_UNIT = {"hour": "04", "dagdeel": "16", "etmaal": "14"}


def prefill(
    line: ArrangementLine, holder_id: int, municipality_id: int | None, tariff: ContractTerms | None
) -> dict[str, str]:
    """The allocation form as the arrangement line fills it in: effort-based specific, the
    product with the category and unit of the holder's contract, the weekly volume (per week
    when it is whole in that unit, else the total over the period, rounded up), the line's
    start and end."""
    code = line.product_code.strip().upper()
    unit = tariff.unit if tariff is not None else _INTENSITY_UNIT.get(line.intensity_unit, "04")
    category = code[:2] if re.fullmatch(r"\d{2}", code[:2]) else ""
    volume, frequency = "", ""
    minutes = UNITS[unit].minutes if unit in UNITS else None
    if (
        unit in ("16", "14")
        and line.units_per_week
        and _INTENSITY_UNIT[line.intensity_unit] == unit
    ):
        volume, frequency = str(line.units_per_week), "2"
    elif minutes is not None and line.minutes_per_week > 0:
        if line.minutes_per_week % minutes == 0:
            volume, frequency = str(line.minutes_per_week // minutes), "2"
        else:
            days = (line.end_date - line.start_date).days + 1
            volume = str(math.ceil(line.minutes_per_week * days / (7 * minutes)))
            frequency = "6"
    return {
        "line_id": str(line.line_id),
        "number": "",
        "provider_id": str(holder_id),
        "municipality_id": str(municipality_id or ""),
        "variant": "specific",
        "product_category": category,
        "product_code": code,
        "volume": volume,
        "unit": unit,
        "frequency": frequency,
        "budget": "",
        "start": line.start_date.isoformat(),
        "end": line.end_date.isoformat(),
    }


# ---- with the database ----


@dataclass(frozen=True)
class Choice:
    id: int
    name: str


@dataclass(frozen=True)
class Proposal:
    """A proposed allocation as the page shows it (the case only by its pseudonym)."""

    line_id: int
    case_pseudonym: str
    provider_name: str  # who delivers
    holder_name: str  # who would hold the allocation
    via_kassier: bool
    minutes_per_week: int
    intensity_unit: str
    units_per_week: int | None
    hours_per_week: str  # "2,5", as the table stated it
    start: dt.date  # the line's period, for the sentence above the form
    end: dt.date
    values: Mapping[str, str]  # the form, prefilled
    holders: tuple[Choice, ...]  # empty: the viewer is the holder and cannot change it
    municipalities: tuple[Choice, ...]


@dataclass(frozen=True)
class _Context:
    sees_all: bool
    holder_finance: bool  # finance staff of a provider: sees the proposals it would hold
    org: Organisation
    lines: list[triage.FixedArrangementLine]
    agreements: list[SubProviderAgreement]
    allocations: list[Allocation]
    linked: set[int]
    contracts: list[ContractTerms]
    categories: dict[tuple[int, str], str]
    names: dict[int, str]
    municipality_of: dict[int, int | None]
    pseudonym_of: dict[int, str]


async def _context(uow: UnitOfWork, today: dt.date) -> _Context:
    org, sees_all = await check_settlement_access(uow)
    # Lines still running or to come: an allocation for care that is over is entered by hand.
    lines = await triage.fixed_arrangement_lines(uow.db, today, dt.date.max)
    case_ids = {ln.case_id for ln in lines}
    codes = {ln.product_code.strip().upper() for ln in lines}
    agreements = [sub_provider_terms(g) for g in await uow.db.scalars(select(AgreementRow))]
    rows = list(
        await uow.db.scalars(select(AllocationRow).where(AllocationRow.case_id.in_(case_ids)))
    )
    contract_rows = list(
        await uow.db.scalars(select(Contract).where(Contract.product_code.in_(codes)))
    )
    names = {o.id: o.name for o in await uow.db.scalars(select(Organisation))}
    cases = {c.id: c for c in await uow.db.scalars(select(Case).where(Case.id.in_(case_ids)))}
    return _Context(
        sees_all=sees_all,
        holder_finance=uow.who.has(StaffRole.FINANCE),
        org=org,
        lines=lines,
        agreements=agreements,
        allocations=[allocation_terms(a) for a in rows],
        linked={a.arrangement_line_id for a in rows if a.arrangement_line_id is not None},
        contracts=[contract_terms(c) for c in contract_rows],
        categories={(c.provider_id, c.product_code): c.product_category for c in contract_rows},
        names=names,
        municipality_of={i: c.municipality_id for i, c in cases.items()},
        pseudonym_of={i: c.pseudonym for i, c in cases.items()},
    )


def _tariff(ctx: _Context, holder_id: int, code: str, day: dt.date) -> ContractTerms | None:
    mine = [c for c in ctx.contracts if c.provider_id == holder_id and c.product_code == code]
    return next((c for c in mine if c.period.clip(DateRange(day, day))), mine[0] if mine else None)


async def _choices(uow: UnitOfWork, kind: str) -> tuple[Choice, ...]:
    orgs = await uow.db.scalars(
        select(Organisation).where(Organisation.kind == kind).order_by(Organisation.name)
    )
    return tuple(Choice(o.id, o.name) for o in orgs)


def _open_lines(ctx: _Context) -> list[tuple[triage.FixedArrangementLine, int]]:
    """The lines no allocation covers yet, with their holder, that the viewer may act on."""
    out = []
    for line in ctx.lines:
        holder = holder_for(line.provider_id, line.start_date, ctx.agreements)
        if line.line_id in ctx.linked or is_covered(line, holder, ctx.allocations):
            continue
        if ctx.sees_all or (holder == ctx.org.id and ctx.holder_finance):
            out.append((line, holder))
    return out


def _proposal(
    ctx: _Context,
    line: triage.FixedArrangementLine,
    holder: int,
    holders: tuple[Choice, ...],
    municipalities: tuple[Choice, ...],
) -> Proposal:
    tariff = _tariff(ctx, holder, line.product_code.strip().upper(), line.start_date)
    values = prefill(line, holder, ctx.municipality_of.get(line.case_id), tariff)
    category = ctx.categories.get((holder, values["product_code"]))
    if category:
        values["product_category"] = category
    return Proposal(
        line_id=line.line_id,
        case_pseudonym=ctx.pseudonym_of.get(line.case_id, ""),
        provider_name=ctx.names.get(line.provider_id, ""),
        holder_name=ctx.names.get(holder, ""),
        via_kassier=holder != line.provider_id,
        minutes_per_week=line.minutes_per_week,
        intensity_unit=line.intensity_unit,
        units_per_week=line.units_per_week,
        hours_per_week=_hours(line.minutes_per_week),
        start=line.start_date,
        end=line.end_date,
        values=values,
        holders=holders if ctx.sees_all else (),
        municipalities=municipalities,
    )


def _hours(minutes: int) -> str:
    whole, rest = divmod(minutes, 60)
    return str(whole) if not rest else f"{minutes / 60:.2f}".rstrip("0").replace(".", ",")


async def allocation_proposals(uow: UnitOfWork, today: dt.date) -> list[Proposal]:
    """The allocations the fixed arrangements propose that no allocation covers yet, for lines
    that have not ended before ``today``: all of
    them for the penvoerder's finance; for a provider's finance staff those it would hold
    (other staff of the provider see none: a proposal names the case)."""
    if not uow.who.has(StaffRole.FINANCE):  # only finance staff see proposals: skip the work
        await check_settlement_access(uow)
        return []
    ctx = await _context(uow, today)
    open_lines = _open_lines(ctx)
    if not open_lines:
        return []
    holders = await _choices(uow, OrgKind.PROVIDER)
    municipalities = await _choices(uow, OrgKind.MUNICIPALITY)
    return [_proposal(ctx, line, holder, holders, municipalities) for line, holder in open_lines]


async def proposal_form(uow: UnitOfWork, raw_line_id: str, today: dt.date) -> Proposal | None:
    """One open proposal (to show its form again with what was typed), or None."""
    ctx = await _context(uow, today)
    line_id = int(raw_line_id) if raw_line_id.isdecimal() else -1
    found = next(((ln, h) for ln, h in _open_lines(ctx) if ln.line_id == line_id), None)
    if found is None:
        return None
    holders = await _choices(uow, OrgKind.PROVIDER)
    return _proposal(ctx, found[0], found[1], holders, await _choices(uow, OrgKind.MUNICIPALITY))


@dataclass(frozen=True)
class ProposalDraft:
    line_id: int
    allocation: Allocation  # case_id 0: it is the line's


_ID = re.compile(r"\d{1,9}", re.ASCII)


async def read_proposal_form(uow: UnitOfWork, values: Mapping[str, str]) -> ProposalDraft:
    """Read the confirm form; raises :class:`InvalidInput` naming every bad field."""
    allocation, errors = read_allocation_fields(values)
    ids: dict[str, int] = {}
    for name, message in (
        ("line_id", N_("Dit voorstel bestaat niet (meer).")),
        ("provider_id", N_("Kies een aanbieder.")),
        ("municipality_id", N_("Kies een gemeente.")),
    ):
        raw = values.get(name, "").strip()
        if _ID.fullmatch(raw):
            ids[name] = int(raw)
        else:
            errors.setdefault(name, message)
    if not values.get("number", "").strip():
        errors["number"] = N_("Vul het toewijzingsnummer in dat de gemeente heeft gegeven.")
    if errors:
        raise InvalidInput(errors)
    return ProposalDraft(
        ids["line_id"],
        replace(
            allocation,
            provider_id=ids["provider_id"],
            municipality_id=ids["municipality_id"],
        ),
    )


async def confirm_proposal(uow: UnitOfWork, draft: ProposalDraft, today: dt.date) -> Allocation:
    """Record the allocation a proposal leads to (toewijzing vastleggen), linked to its
    arrangement line so it is proposed no more. Finance of the penvoerder may confirm any
    proposal and choose the holder; a provider's finance staff only one it holds, for itself."""
    ctx = await _context(uow, today)
    found = next(((ln, h) for ln, h in _open_lines(ctx) if ln.line_id == draft.line_id), None)
    if found is None:
        raise InvalidInput({"line_id": N_("Dit voorstel bestaat niet (meer).")})
    line, holder = found
    allocation = draft.allocation
    if not ctx.sees_all and allocation.provider_id != holder:
        raise NotAllowed()
    return await store_allocation(
        uow, replace(allocation, case_id=line.case_id), arrangement_line_id=line.line_id
    )
