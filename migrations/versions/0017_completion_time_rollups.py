"""completion times in the daily analytics rows

``workflow_analytics.completion_times``: a day's completion times as
counts in fixed buckets, so a period's median and distribution are merged
from its stored days (docs/OPERATIONS.md "Data that grows"). Rows stored
before it have none and are computed again once, while their flow states
are kept.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 12:40:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("workflow_analytics") as batch:
        batch.add_column(sa.Column("completion_times", JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("workflow_analytics") as batch:
        batch.drop_column("completion_times")
