"""How many of a job's records went the careful way, one by one.

The fast path takes runs of plain lines as they are; this count shows how much of a file it
could not take, which is what decides how fast a file loads.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "import_jobs",
        sa.Column("rows_careful", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("import_jobs", "rows_careful")
