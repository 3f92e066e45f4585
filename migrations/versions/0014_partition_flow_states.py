"""contact_flow_states partitioned by month on PostgreSQL

The flow states grow for years: on PostgreSQL the table becomes a RANGE
partitioned one, a partition per month of ``entered_at`` and a DEFAULT
partition, so retention drops whole months (docs/OPERATIONS.md "Data
that grows"). Existing rows are copied into the partitions in this
migration's transaction (the downgrade copies them back into a plain
table). SQLite keeps the plain table.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:30:00

"""

from alembic import op

from app.clock import now
from app.models import partitioning

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitioning.convert(bind, "contact_flow_states", now())


def downgrade():
    # Back to the plain table, every row kept.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitioning.revert(bind, "contact_flow_states")
