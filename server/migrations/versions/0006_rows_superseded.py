"""Upserts count the lines whose key a later line of the same file gave again.

Every line of a file is then loaded, refused or superseded, and a job completes only when
those add up.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "import_jobs",
        sa.Column("rows_superseded", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("import_jobs", "rows_superseded")
