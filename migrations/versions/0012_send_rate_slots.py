"""send rate slots: the global rate limit's clock on the embedded default

Redis keeps it otherwise (docs/SENDING.md "Rate limits").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "send_rate_slots",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_send_rate_slots")),
    )


def downgrade():
    op.drop_table("send_rate_slots")
