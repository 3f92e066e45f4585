"""suppression list imports as jobs

A CSV import of the suppression list is a job with a progress bar like
a contact import, on the same tables: ``contact_imports.kind`` says what
the rows are ("contacts" or "suppressions").

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("contact_imports") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=20), server_default="contacts", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("contact_imports") as batch:
        batch.drop_column("kind")
