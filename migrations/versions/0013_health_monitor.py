"""stuck-work monitor: lease expiries per execution, open health alerts

``workflow_executions.lease_expiries`` counts claims that found the
previous worker's lease expired; ``health_alerts`` remembers which
problems are open so each raises one notification (docs/OPERATIONS.md).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:40:00

"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(
            sa.Column("lease_expiries", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "health_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("firm_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["firm_id"], ["firms.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_health_alerts_firm_id", "health_alerts", ["firm_id"])


def downgrade():
    op.drop_index("ix_health_alerts_firm_id", table_name="health_alerts")
    op.drop_table("health_alerts")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("lease_expiries")
