"""send pacing: workflow send windows and priority

A workflow's ``send_window`` and ``priority`` (docs/SENDING.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:20:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("send_window", JSON, nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), server_default="5", nullable=False))


def downgrade():
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("priority")
        batch.drop_column("send_window")
