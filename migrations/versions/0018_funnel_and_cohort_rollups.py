"""funnel and cohort counts in the daily analytics rows

``workflow_analytics.breakdowns``: a day's path outcomes and entry-week
cohort counts, summed for a period's funnels and cohorts so the dashboard
reads closed days from stored rows (docs/OPERATIONS.md "Data that
grows"). Rows stored before it have none and are computed again once,
while their flow states are kept.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 12:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("workflow_analytics") as batch:
        batch.add_column(sa.Column("breakdowns", JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("workflow_analytics") as batch:
        batch.drop_column("breakdowns")
