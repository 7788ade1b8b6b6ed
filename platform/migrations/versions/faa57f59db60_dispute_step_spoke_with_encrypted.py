"""dispute step spoke_with encrypted

Revision ID: faa57f59db60
Revises: 3881e8731b65
Create Date: 2026-11-25 02:57:17.518022

With whom a dispute step was discussed is now stored encrypted with the case key, like the
step's note. Existing rows are not encrypted here: the case keys are wrapped by the master
keys, which are runtime configuration and not known to a migration. The old plain column stays
and is read while the new one is empty; shredding a case blanks it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "faa57f59db60"
down_revision = "3881e8731b65"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("allocation_dispute_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spoke_with_enc", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("allocation_dispute_step", schema=None) as batch_op:
        batch_op.drop_column("spoke_with_enc")
