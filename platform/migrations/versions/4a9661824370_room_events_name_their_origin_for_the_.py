"""room events name their origin for the live relay

Revision ID: 4a9661824370
Revises: faa57f59db60
Create Date: 2026-11-25 04:56:35.969499

``room_event`` is also the live relay's outbox: each row names the hub (server or command
process) that saved it, so a server passes on to its screens what other processes saved and
skips what it published itself. Existing rows keep NULL: the relay starts after the newest
event, so they are never passed on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4a9661824370"
down_revision = "faa57f59db60"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("room_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("room_event", schema=None) as batch_op:
        batch_op.drop_column("origin")
