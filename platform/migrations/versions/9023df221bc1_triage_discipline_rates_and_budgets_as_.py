"""triage discipline rates and budgets as data

Revision ID: 9023df221bc1
Revises: 4a9661824370
Create Date: 2026-11-25 04:54:12.092800

The triage-team discipline rates and yearly budgets were constants in
settlement/triage_hours.py; now they are rows the penvoerder's finance staff keep per region.
The constants are seeded here (a frozen copy, so later code changes do not change this
migration): the rates for region IJsselland and for the region of every penvoerder that
exists (the constant priced every penvoerder's hours), the budgets of 2023-2027 for
IJsselland however its name was written (the constant matched it without case or spaces).
Behaviour is unchanged.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

import keerpunt.platform.db

revision = "9023df221bc1"
down_revision = "4a9661824370"
branch_labels = None
depends_on = None

PILOT = dt.date(2023, 1, 1)
RATES = (
    ("ervaringsdeskundige", 75_00),
    ("onderwijsconsulent", 100_00),
    ("regiebehandelaar", 140_00),
    ("systeembehandelaar", 120_00),
    ("gezinsbehandelaar", 120_00),
    ("gedragswetenschapper", 120_00),
)
BUDGET_CENTS = 110_000_00
BUDGET_YEARS = range(2023, 2028)


def upgrade() -> None:
    rate = op.create_table(
        "discipline_rate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("discipline", sa.String(length=30), nullable=False),
        sa.Column("cents_per_hour", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", keerpunt.platform.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint(
            "cents_per_hour >= 0", name=op.f("ck_discipline_rate_rate_not_negative")
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from",
            name=op.f("ck_discipline_rate_period_order"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_discipline_rate_created_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discipline_rate")),
        sa.UniqueConstraint(
            "region", "discipline", "valid_from", name=op.f("uq_discipline_rate_region")
        ),
    )
    budget = op.create_table(
        "triage_budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "changed_at", keerpunt.platform.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint("cents >= 0", name=op.f("ck_triage_budget_budget_not_negative")),
        sa.ForeignKeyConstraint(
            ["changed_by_id"],
            ["user_account.id"],
            name=op.f("fk_triage_budget_changed_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_budget")),
        sa.UniqueConstraint("region", "year", name=op.f("uq_triage_budget_region")),
    )
    organisation = sa.table(
        "organisation", sa.column("region", sa.String), sa.column("is_penvoerder", sa.Boolean)
    )
    penvoerder_regions = {
        (r or "").strip()
        for r in op.get_bind().scalars(
            sa.select(organisation.c.region).where(organisation.c.is_penvoerder.is_(True))
        )
    }
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        rate,
        [
            {
                "region": region,
                "discipline": discipline,
                "cents_per_hour": cents,
                "valid_from": PILOT,
                "valid_to": None,
                "created_at": now,
            }
            for region in sorted(penvoerder_regions | {"IJsselland"})
            for discipline, cents in RATES
        ],
    )
    ijsselland = {r for r in penvoerder_regions if r.casefold() == "ijsselland"} | {"IJsselland"}
    op.bulk_insert(
        budget,
        [
            {"region": region, "year": year, "cents": BUDGET_CENTS, "changed_at": now}
            for region in sorted(ijsselland)
            for year in BUDGET_YEARS
        ],
    )


def downgrade() -> None:
    op.drop_table("triage_budget")
    op.drop_table("discipline_rate")
