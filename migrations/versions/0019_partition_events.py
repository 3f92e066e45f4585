"""event_log and tracking_events partitioned by month on PostgreSQL

Both grow for years. On PostgreSQL each becomes a RANGE partitioned table
(a partition per month of ``created_at`` and a DEFAULT one, rows copied in
this migration's transaction), so retention drops whole months
(docs/OPERATIONS.md "Data that grows"). Their unique keys
``(firm_id, event_id)`` cannot hold across partitions without the month:
replay keys move to ``event_keys`` (one unpartitioned table, filled here
from the existing rows), which every event insert claims first. SQLite
keeps the plain tables (and their unique keys); ``event_keys`` exists on
both. The downgrade copies the rows back into plain tables.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 13:00:00

"""

import sqlalchemy as sa
from alembic import op

from app.clock import now
from app.models import partitioning
from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("event_log", "tracking_events")


def upgrade():
    op.create_table(
        "event_keys",
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["firm_id"], ["firms.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("scope", "firm_id", "event_id"),
    )
    op.create_index("ix_event_keys_created", "event_keys", ["created_at"])
    op.create_index("ix_event_keys_firm_id", "event_keys", ["firm_id"])
    op.execute(
        "INSERT INTO event_keys (scope, firm_id, event_id, created_at) "
        "SELECT 'event', firm_id, event_id, created_at FROM event_log"
    )
    op.execute(
        "INSERT INTO event_keys (scope, firm_id, event_id, created_at) "
        "SELECT 'tracking', firm_id, event_id, created_at FROM tracking_events "
        "WHERE event_id IS NOT NULL"
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            partitioning.convert(bind, table, now())


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            partitioning.revert(bind, table)
    op.drop_index("ix_event_keys_firm_id", table_name="event_keys")
    op.drop_index("ix_event_keys_created", table_name="event_keys")
    op.drop_table("event_keys")
