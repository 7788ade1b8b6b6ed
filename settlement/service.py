"""Settlement (afrekening): the public service of the settlement domain.

The rules themselves are pure and live in :mod:`keerpunt.settlement.rules` and
:mod:`~keerpunt.settlement.declaration` (re-exported here for other domains and the routes);
allocations, agreements and deliveries are kept by :mod:`~keerpunt.settlement.records`. This
module keeps the contract tariffs and the quarter overview, inside the caller's unit of work; it
never commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select

from keerpunt.platform import audit
from keerpunt.platform.errors import InvalidInput, NotFound
from keerpunt.platform.i18n import N_
from keerpunt.platform.models import Organisation, OrgKind
from keerpunt.platform.uow import UnitOfWork
from keerpunt.settlement.access import check_finance_access, menu_pages
from keerpunt.settlement.closing import (
    COUNT_TEXT,
    PHASE_DONE,
    PHASE_TEXT,
    PHASE_WAIT,
    CloseJob,
    Closer,
    check_close,
    closing_state,
    count_text,
)
from keerpunt.settlement.declaration import DELIVERY_FIELDS, DeliveryDraft, read_delivery_form
from keerpunt.settlement.imports import (
    ImportKind,
    ImportRejected,
    ImportResult,
    error_lines,
    import_as,
    import_file,
)
from keerpunt.settlement.models import Contract
from keerpunt.settlement.records import (
    AllocationsPage,
    AllocationView,
    DeliveryRefused,
    DeliveryView,
    add_agreement,
    add_allocation,
    allocations_page,
    check_quarter,
    record_delivery,
    store_contract,
    visible_allocations,
)
from keerpunt.settlement.rules import (
    BAD_DATE,
    CONTRACT_FIELDS,
    MAX_TARIFF_CENTS,
    UNITS,
    ContractDraft,
    ContractTerms,
    DateRange,
    InvalidAmount,
    InvalidQuarter,
    LinePrice,
    OverviewLine,
    PricedLine,
    PricedPart,
    Problem,
    ProblemKind,
    ProviderBlock,
    ProviderInfo,
    Quarter,
    QuarterOverview,
    SourceLine,
    UnitInfo,
    UnpriceableUnit,
    assemble_overview,
    check_contract_draft,
    find_overlap,
    parse_date,
    parse_euros,
    parse_quarter,
    price_line,
    quarter_of,
    read_contract_form,
    round_half_away_from_zero,
)
from keerpunt.settlement.runs import (
    LaterQuarterClosed,
    QuarterNotOver,
    RunPage,
    RunSummary,
    cli_principal,
    close_quarter,
    run_declarations,
    run_page,
    run_statement,
)
from keerpunt.settlement.statement_pdf import statement_pdf, statement_pdf_name, statement_pdfs
from keerpunt.settlement.statement_view import (
    ProviderStatement,
    own_statements,
    provider_statement,
    provider_statement_csv,
    statement_providers,
)
from keerpunt.triage import service as triage

__all__ = [
    "BAD_DATE",
    "CONTRACT_FIELDS",
    "COUNT_TEXT",
    "DELIVERY_FIELDS",
    "MAX_TARIFF_CENTS",
    "PHASE_DONE",
    "PHASE_TEXT",
    "PHASE_WAIT",
    "UNITS",
    "AllocationView",
    "AllocationsPage",
    "CloseJob",
    "Closer",
    "ContractDraft",
    "ContractRow",
    "ContractTerms",
    "DateRange",
    "DeliveryDraft",
    "DeliveryRefused",
    "DeliveryView",
    "ImportKind",
    "ImportRejected",
    "ImportResult",
    "InvalidAmount",
    "InvalidQuarter",
    "LaterQuarterClosed",
    "LinePrice",
    "OverviewLine",
    "PricedLine",
    "PricedPart",
    "Problem",
    "ProblemKind",
    "ProviderBlock",
    "ProviderInfo",
    "ProviderStatement",
    "Quarter",
    "QuarterNotOver",
    "QuarterOverview",
    "RunPage",
    "RunSummary",
    "SourceLine",
    "UnitInfo",
    "UnpriceableUnit",
    "add_agreement",
    "add_allocation",
    "add_contract",
    "allocations_page",
    "assemble_overview",
    "check_close",
    "check_contract_draft",
    "check_finance_access",
    "check_quarter",
    "cli_principal",
    "close_quarter",
    "closing_state",
    "count_text",
    "end_contract",
    "error_lines",
    "find_overlap",
    "import_as",
    "import_file",
    "list_contracts",
    "menu_pages",
    "own_statements",
    "parse_date",
    "parse_euros",
    "parse_quarter",
    "price_line",
    "provider_choices",
    "provider_statement",
    "provider_statement_csv",
    "quarter_of",
    "quarter_overview",
    "read_contract_form",
    "read_delivery_form",
    "record_delivery",
    "round_half_away_from_zero",
    "run_declarations",
    "run_page",
    "run_statement",
    "statement_pdf",
    "statement_pdf_name",
    "statement_pdfs",
    "statement_providers",
    "visible_allocations",
]

# ---- with the database ----


@dataclass(frozen=True)
class ContractRow:
    id: int
    provider_id: int
    provider_name: str
    product_category: str
    product_code: str
    description: str
    unit: str
    tariff_cents: int
    valid_from: dt.date
    valid_to: dt.date | None


def _terms(c: Contract) -> ContractTerms:
    return ContractTerms(
        provider_id=c.provider_id,
        product_code=c.product_code,
        unit=c.unit,
        tariff_cents=c.tariff_cents,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        description=c.description,
    )


def _row(c: Contract, provider_name: str) -> ContractRow:
    return ContractRow(
        id=c.id,
        provider_id=c.provider_id,
        provider_name=provider_name,
        product_category=c.product_category,
        product_code=c.product_code,
        description=c.description,
        unit=c.unit,
        tariff_cents=c.tariff_cents,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
    )


OVERLAP = N_(
    "Er is al een tarief voor dit product in deze periode. Kies een periode die daarna "
    "begint, of zet eerst een einddatum bij het oude tarief."
)


async def _lock_provider(uow: UnitOfWork, provider_id: int) -> Organisation | None:
    # Lock the provider row so two finance users cannot write overlapping tariffs at once
    # (on SQLite the write transaction already serialises this).
    result = await uow.db.execute(
        select(Organisation).where(Organisation.id == provider_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def _tariffs_of(
    uow: UnitOfWork, provider_id: int, product_code: str, *, besides: int | None = None
) -> list[ContractTerms]:
    query = select(Contract).where(
        Contract.provider_id == provider_id, Contract.product_code == product_code
    )
    if besides is not None:
        query = query.where(Contract.id != besides)
    return [_terms(c) for c in await uow.db.scalars(query)]


async def add_contract(uow: UnitOfWork, draft: ContractDraft) -> ContractRow:
    """Add a contract tariff for a provider and product. A new tariff (indexering) is a new
    row; its period may not share a day with another tariff of the same provider and product.
    """
    await check_finance_access(uow)
    errors = check_contract_draft(draft)
    if errors:
        raise InvalidInput(errors)
    provider = await _lock_provider(uow, draft.provider_id)
    if provider is None or provider.kind != OrgKind.PROVIDER:
        raise InvalidInput({"provider_id": N_("Kies een aanbieder.")})
    existing = await _tariffs_of(uow, draft.provider_id, draft.product_code)
    if find_overlap(existing, draft.valid_from, draft.valid_to):
        raise InvalidInput({"valid_from": OVERLAP})
    contract = await store_contract(uow, draft)
    return _row(contract, provider.name)


async def end_contract(uow: UnitOfWork, contract_id: int, valid_to: dt.date) -> ContractRow:
    """Set the last day of a tariff (einddatum), e.g. before an indexed tariff starts. The
    period may not come to share a day with another tariff of the same provider and product.
    """
    await check_finance_access(uow)
    contract = await uow.db.get(Contract, contract_id)
    if contract is None:
        raise NotFound()
    provider = await _lock_provider(uow, contract.provider_id)
    assert provider is not None  # a foreign key
    if valid_to < contract.valid_from:
        raise InvalidInput({"valid_to": N_("De einddatum ligt vóór de begindatum.")})
    others = await _tariffs_of(
        uow, contract.provider_id, contract.product_code, besides=contract.id
    )
    if find_overlap(others, contract.valid_from, valid_to):
        raise InvalidInput({"valid_to": OVERLAP})
    before = contract.valid_to
    contract.valid_to = valid_to
    await uow.db.flush()
    await audit.record(
        uow.db,
        uow.who,
        "settlement.contract.end",
        purpose="settlement",
        detail=f"contract={contract.id} to={valid_to} was={before or ''}",
    )
    return _row(contract, provider.name)


async def list_contracts(uow: UnitOfWork) -> list[ContractRow]:
    """Every contract tariff, per provider and product, oldest period first."""
    await check_finance_access(uow)
    rows = await uow.db.execute(
        select(Contract, Organisation.name)
        .join(Organisation, Organisation.id == Contract.provider_id)
        .order_by(Organisation.name, Contract.product_code, Contract.valid_from)
    )
    return [_row(c, name) for c, name in rows]


async def provider_choices(uow: UnitOfWork) -> list[ProviderInfo]:
    """The providers (zorgaanbieders) a contract can be for."""
    await check_finance_access(uow)
    orgs = await uow.db.scalars(
        select(Organisation)
        .where(Organisation.kind == OrgKind.PROVIDER)
        .order_by(Organisation.name)
    )
    return [ProviderInfo(o.id, o.name, o.agb_code) for o in orgs]


async def quarter_overview(uow: UnitOfWork, quarter: Quarter) -> QuarterOverview:
    """What the fixed arrangements cost in a quarter, per provider, at the contract tariffs;
    lines without a tariff on some days are listed as problems (kwartaaloverzicht)."""
    await check_finance_access(uow)
    lines = await triage.fixed_arrangement_lines(uow.db, quarter.start, quarter.end)
    provider_ids = {line.provider_id for line in lines}
    if not provider_ids:
        return assemble_overview(quarter, [], [], {})
    contracts = await uow.db.scalars(
        select(Contract).where(
            Contract.provider_id.in_(provider_ids),
            Contract.valid_from <= quarter.end,
            or_(Contract.valid_to.is_(None), Contract.valid_to >= quarter.start),
        )
    )
    orgs = await uow.db.scalars(select(Organisation).where(Organisation.id.in_(provider_ids)))
    providers = {o.id: ProviderInfo(o.id, o.name, o.agb_code) for o in orgs}
    return assemble_overview(quarter, lines, [_terms(c) for c in contracts], providers)
