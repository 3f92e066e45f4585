"""Audience enrollments count their stalls without progress

A job whose worker keeps dying on the same batch is failed after
STALL_LIMIT recoveries in a row (app/automation/audiences/enroll.py)
instead of being restarted for ever.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 08:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("audience_enrollments") as batch_op:
        batch_op.add_column(sa.Column("stalls", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("audience_enrollments") as batch_op:
        batch_op.drop_column("stalls")
