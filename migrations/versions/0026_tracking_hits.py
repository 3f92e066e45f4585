"""Tracking hits: opens and clicks taken by the endpoint, processed in batches

The pixel and the click redirect commit one row each and answer; a worker
turns the rows into tracking events and trigger-bus events in batches
(app/automation/delivery/tracking_hits.py).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 15:00:00

"""

import sqlalchemy as sa
from alembic import op

import app.models.base

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "tracking_hits",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_hits")),
    )
    op.create_index("ix_tracking_hits_firm_id_id", "tracking_hits", ["firm_id", "id"])


def downgrade():
    op.drop_index("ix_tracking_hits_firm_id_id", table_name="tracking_hits")
    op.drop_table("tracking_hits")
