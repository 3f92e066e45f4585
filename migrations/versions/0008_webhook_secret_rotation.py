"""webhook secret rotation

A firm's previous webhook signing secret and when it was replaced: for
24 hours after a rotation deliveries carry a signature with each secret
(Standard Webhooks allows several), so receivers can switch over.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.models.base  # noqa: F401  (column types)

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("firms", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_secret_previous", sa.String(length=100), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "webhook_secret_rotated_at",
                app.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade():
    with op.batch_alter_table("firms", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret_rotated_at")
        batch_op.drop_column("webhook_secret_previous")
