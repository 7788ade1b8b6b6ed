"""Settlement tables: contract tariffs (contracttarieven), allocations (toewijzingen), deliveries
(geleverde zorg) and sub-provider agreements of a kassier.

A tariff that changes over time (indexation, *indexering*) is a new row with a later
``valid_from``; rows are never edited to a new price, so an old quarter is always priced with
the tariff that was valid then. Periods of one provider and product never overlap (checked in
:func:`keerpunt.settlement.service.add_contract`, under a lock on the provider row).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from keerpunt.platform.db import Base, utcnow
from keerpunt.settlement.rules import UNIT_CODES


class Contract(Base):
    """The tariff a provider gets for one product (GiZ product category + code) in a period.

    ``tariff_cents`` is the price of one ``unit`` in euro cents; ``valid_to`` is inclusive and
    empty for "until further notice".
    """

    __tablename__ = "contract"
    __table_args__ = (
        CheckConstraint("tariff_cents >= 0", name="tariff_not_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_order"),
        CheckConstraint(
            "unit IN (" + ", ".join(f"'{u}'" for u in UNIT_CODES) + ")", name="unit_known"
        ),
        Index("ix_contract_provider_product", "provider_id", "product_code", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    product_category: Mapped[str] = mapped_column(String(2))  # productcategorie, e.g. "45"
    product_code: Mapped[str] = mapped_column(String(5))  # productcode, e.g. "45A52"
    description: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(2))  # iJw eenheid, e.g. "04" hour
    tariff_cents: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# iJw allocation variants and frequencies; their rules live in settlement.declaration.
VARIANTS = ("specific", "aspecific", "generic", "output")
FREQUENCIES = ("1", "2", "4", "6")
MARGIN_KINDS = ("percent", "fixed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Allocation(Base):
    """A toewijzing: a municipality allows ``provider_id`` to deliver care for a case.

    In the declaration model every delivering provider holds its own; in the kassier model the
    kassier holds it and registered sub-providers deliver under it. Which of category, code,
    volume, unit, frequency and budget are filled depends on ``variant`` (iJw). ``end_date``
    is inclusive.
    """

    __tablename__ = "allocation"
    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="period_order"),
        CheckConstraint(_one_of("variant", VARIANTS), name="variant_known"),
        CheckConstraint(
            "frequency IS NULL OR " + _one_of("frequency", FREQUENCIES), name="frequency_known"
        ),
        CheckConstraint("unit IS NULL OR " + _one_of("unit", UNIT_CODES), name="unit_known"),
        CheckConstraint("volume IS NULL OR volume > 0", name="volume_positive"),
        CheckConstraint("budget_cents IS NULL OR budget_cents >= 0", name="budget_not_negative"),
        Index("ix_allocation_provider", "provider_id", "start_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # toewijzingnummer
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    variant: Mapped[str] = mapped_column(String(12))
    product_category: Mapped[str | None] = mapped_column(String(2))
    product_code: Mapped[str | None] = mapped_column(String(5))
    volume: Mapped[int | None] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(String(2))
    frequency: Mapped[str | None] = mapped_column(String(1))
    budget_cents: Mapped[int | None] = mapped_column(BigInteger)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    # The triage arrangement line this allocation was confirmed from (settlement.proposals).
    # No foreign key on purpose: settlement's tables do not depend on triage's.
    arrangement_line_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """Geleverde zorg: ``volume`` of a product (in the contract's unit) that a provider
    delivered under an allocation over a product period within one calendar month.

    A correction edits the row (its id stays): the next run credits what was declared before
    and declares the new values; closed runs keep their own copy of every line."""

    __tablename__ = "delivery"
    __table_args__ = (
        CheckConstraint("end_date >= start_date", name="period_order"),
        CheckConstraint("volume > 0", name="volume_positive"),
        Index("ix_delivery_allocation", "allocation_id", "start_date"),
        Index("ix_delivery_provider", "provider_id", "start_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocation.id"))
    product_category: Mapped[str] = mapped_column(String(2))
    product_code: Mapped[str] = mapped_column(String(5))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    volume: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SubProviderAgreement(Base):
    """A provider registered with a kassier to deliver under the kassier's allocations
    (onderaannemer), and the margin the kassier keeps: a percentage in hundredths
    (660 = 6,60 %) or a fixed amount in cents per delivered unit. ``valid_to`` inclusive."""

    __tablename__ = "sub_provider_agreement"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_order"),
        CheckConstraint(_one_of("margin_kind", MARGIN_KINDS), name="margin_kind_known"),
        CheckConstraint("margin_value >= 0", name="margin_not_negative"),
        CheckConstraint(
            "margin_kind <> 'percent' OR margin_value <= 10000", name="percent_at_most_100"
        ),
        Index("ix_sub_provider_agreement_pair", "kassier_id", "provider_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kassier_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    margin_kind: Mapped[str] = mapped_column(String(10))
    margin_value: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SettlementRun(Base):
    """A closed quarter (afgesloten kwartaal): written once, never changed. Later corrections
    go into the next run as credit and debit lines. ``digest`` is the SHA-256 of the run's
    statement, so a copy can be checked against it."""

    __tablename__ = "settlement_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(6), unique=True)  # "2026Q3"
    closed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    line_count: Mapped[int] = mapped_column(Integer)
    rejected_count: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    # True: the kassier's margins were worked out when the run closed and stored on its lines.
    # Runs closed before that have none; their margins can only be worked out with the
    # agreements of today, and say so.
    margins_stored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SettlementClosing(Base):
    """One press of the penvoerder's button (kwartaal afsluiten): how far that closing is and how
    it ended, for every server process to show. Written in short transactions of its own,
    never in the closing's transaction (which commits whole or not at all): made when the work
    starts, its phase and counts refreshed while it runs (PostgreSQL only, see
    :mod:`keerpunt.settlement.closing`), marked finished after the closing committed or rolled
    back. ``error`` is the Dutch message id of a failure. A row without ``finished_at`` whose
    ``updated_at`` is old was left by a process that stopped (closing.closing_state)."""

    __tablename__ = "settlement_closing"
    __table_args__ = (
        CheckConstraint("done >= 0 AND total >= 0", name="counts_not_negative"),
        Index("ix_settlement_closing_quarter", "quarter", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(6))  # "2026Q3"
    # The penvoerder whose finance staff pressed; no foreign key on purpose: the closing holds
    # that organisation's row FOR UPDATE for its whole run, and the key check of an insert
    # (FOR KEY SHARE on PostgreSQL) would wait for it. Organisations are never deleted.
    organisation_id: Mapped[int] = mapped_column(Integer)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    phase: Mapped[str] = mapped_column(String(10))  # closing.PHASE_* and runs.PHASE_*
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class SettlementRunLine(Base):
    """One line a run declared: a debit, or a credit of a line of an earlier run. A copy of
    every value, so the run reads the same after deliveries, tariffs or allocations change.
    ``delivery_id`` has no foreign key on purpose: a removed delivery is credited, not lost.
    The organisation ids are copies too, without foreign keys: organisations are never
    deleted, and the checks cost three quarters of PostgreSQL's time writing a national run
    (bench/settlement.py: about 72 of 94 s for 1,000,000 lines went to the three triggers).
    ``run_id`` has none either, for the same reason: the run is written first, in the same
    transaction, by the only code that writes lines (runs.close_quarter), and a run is never
    deleted; the check still cost about 40 % of PostgreSQL's time writing 900,000 lines
    (6 s against 3.5 s)."""

    __tablename__ = "settlement_run_line"
    __table_args__ = (
        CheckConstraint("direction IN ('D', 'C')", name="direction_known"),
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        UniqueConstraint("run_id", "seq"),
        Index("ix_settlement_run_line_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)  # settlement_run.id, no foreign key (above)
    seq: Mapped[int] = mapped_column(Integer)
    delivery_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(1))
    allocation_number: Mapped[str] = mapped_column(String(20))
    holder_id: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int] = mapped_column(Integer)
    municipality_id: Mapped[int] = mapped_column(Integer)
    product_category: Mapped[str] = mapped_column(String(2))
    product_code: Mapped[str] = mapped_column(String(5))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    volume: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(2))
    tariff_cents: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # The kassier's margin on this line, worked out once when the run closed
    # (kassier.line_margin), so the quarter reads the same after an agreement changes or ends.
    # Signed like the line: negative on a credit. On a kassier's own line the whole line,
    # without agreement. NULL on lines of a holder that is no kassier, on a sub-provider's line
    # without agreement, and on runs closed before margins were stored.
    margin_cents: Mapped[int | None] = mapped_column(BigInteger)
    agreement_id: Mapped[int | None] = mapped_column(Integer)  # a copy, no foreign key
    margin_kind: Mapped[str | None] = mapped_column(String(10))  # of that agreement
    margin_value: Mapped[int | None] = mapped_column(Integer)


class BankAccount(Base):
    """An organisation's payment account (bankrekening) from ``valid_from`` on. A change is a
    new row, never an edit: the account valid on a day is the one with the latest
    ``valid_from`` on or before it (the last one recorded, when two start the same day), so
    an old payment batch can always be traced to the account it used."""

    __tablename__ = "bank_account"
    __table_args__ = (Index("ix_bank_account_organisation", "organisation_id", "valid_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    iban: Mapped[str] = mapped_column(String(34))  # compact, checked with schwifty
    bic: Mapped[str | None] = mapped_column(String(11))
    holder_name: Mapped[str] = mapped_column(String(70))  # tenaamstelling (SEPA: 70 at most)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DisciplineRateRow(Base):
    """The hourly rate (uurtarief) the penvoerder of ``region`` pays a seconding provider for
    a triage-team member of ``discipline``, from ``valid_from`` to ``valid_to`` (inclusive;
    empty: until further notice). Indexation is a new row; the only edit is giving the
    running row its last day. Periods of one region and discipline never overlap (checked in
    :func:`keerpunt.settlement.triage_rates.add_discipline_rate`, under a lock)."""

    __tablename__ = "discipline_rate"
    __table_args__ = (
        CheckConstraint("cents_per_hour >= 0", name="rate_not_negative"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_order"),
        UniqueConstraint("region", "discipline", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(100))  # triage_hours.region_key of the penvoerder
    discipline: Mapped[str] = mapped_column(String(30))  # platform.models.Discipline
    cents_per_hour: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TriageBudgetRow(Base):
    """The triage-team budget of a region for one year, in cents (seed 003 §6.5). Set again,
    the row gets the new amount (the audit keeps the old one); no longer once the whole year
    is closed."""

    __tablename__ = "triage_budget"
    __table_args__ = (
        CheckConstraint("cents >= 0", name="budget_not_negative"),
        UniqueConstraint("region", "year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    cents: Mapped[int] = mapped_column(BigInteger)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An organisation's key to the JSON API (``/api/v1``), for its own system.

    Only the SHA-256 of the secret is kept; the secret is shown once, when it is made.
    ``scopes`` is a comma-separated list (``deliveries:write`` …). At most one token of an
    organisation is not revoked: a new one replaces the old (the partial unique index holds
    that even when two admins press the button at once).
    """

    __tablename__ = "api_token"
    __table_args__ = (
        Index(
            "uq_api_token_one_active",
            "organisation_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(12))  # the first characters, to recognise it
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class DeliveryReference(Base):
    """The provider system's own reference of a delivery line posted over the API, so a
    retried post finds the line it already made instead of declaring it twice.
    ``fingerprint`` is the SHA-256 of the line's content: the same reference with other
    content is refused."""

    __tablename__ = "delivery_reference"
    __table_args__ = (UniqueConstraint("provider_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    reference: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
