"""How sure the detector was of a file's encoding, and the warnings a job carries.

A file that is neither UTF-8 nor marked by a byte-order mark has its encoding guessed; a
guess below the detector's confidence threshold becomes a warning the API and the page
show.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("encoding_confidence", sa.Float))
    op.add_column(
        "import_jobs",
        sa.Column("warnings", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("import_jobs", "warnings")
    op.drop_column("import_jobs", "encoding_confidence")
