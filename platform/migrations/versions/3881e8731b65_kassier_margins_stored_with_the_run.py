"""kassier margins stored with the run

The kassier's margin per run line, worked out once when a quarter closes, so a closed quarter
never changes when an agreement does. Runs closed before this revision keep NULL margins and
``margins_stored`` false: the agreements valid when they closed are not known any more, so
their margins are worked out with today's agreements and the pages say so.

Revision ID: 3881e8731b65
Revises: f1bfae382d5b
Create Date: 2026-11-25 02:03:14.893413
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3881e8731b65"
down_revision = "f1bfae382d5b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("margins_stored", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("settlement_run_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("margin_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("agreement_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("margin_kind", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("margin_value", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_run_line", schema=None) as batch_op:
        batch_op.drop_column("margin_value")
        batch_op.drop_column("margin_kind")
        batch_op.drop_column("agreement_id")
        batch_op.drop_column("margin_cents")

    with op.batch_alter_table("settlement_run", schema=None) as batch_op:
        batch_op.drop_column("margins_stored")
