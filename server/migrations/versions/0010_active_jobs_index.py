"""The jobs still going, by when they last moved: what the sweeper's search for lost
messages reads every round, without a scan of every job ever recorded.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "import_jobs_active_updated_at_idx",
        "import_jobs",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("import_jobs_active_updated_at_idx", table_name="import_jobs")
