"""When housekeeping removed a finished job's file, staged rows and progress keys.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("cleaned_at", sa.DateTime(timezone=True)))
    op.create_index(
        "import_jobs_uncleaned_idx",
        "import_jobs",
        ["finished_at"],
        postgresql_where=sa.text("cleaned_at IS NULL AND finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("import_jobs_uncleaned_idx", table_name="import_jobs")
    op.drop_column("import_jobs", "cleaned_at")
