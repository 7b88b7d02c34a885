"""Job records, refused rows, segment log and the staging schema.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("key_columns", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'queued'")),
        sa.Column("file_key", sa.Text, nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("encoding", sa.Text, nullable=False),
        sa.Column("delimiter", sa.Text, nullable=False),
        sa.Column("line_terminator", sa.Text, nullable=False),
        sa.Column("header", JSONB, nullable=False),
        sa.Column("column_map", JSONB, nullable=False),
        sa.Column("extra_columns", JSONB, nullable=False),
        sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("idempotency_key", sa.Text, unique=True),
        sa.Column("checkpoint_offset", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("checkpoint_line", sa.BigInteger, nullable=False, server_default="2"),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_refused", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_published", sa.BigInteger),
        sa.Column("segments", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="import_jobs_status_check",
        ),
        sa.CheckConstraint("mode IN ('append', 'upsert')", name="import_jobs_mode_check"),
    )
    op.create_index("import_jobs_created_at_idx", "import_jobs", [sa.text("created_at DESC")])
    # The sweeper looks for jobs committed but never confirmed by the broker.
    op.create_index(
        "import_jobs_unpublished_idx",
        "import_jobs",
        ["created_at"],
        postgresql_where=sa.text("published_at IS NULL AND status = 'queued'"),
    )
    op.create_table(
        "refused_rows",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.Column("column", sa.Text),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("errors", JSONB, nullable=False),
        sa.UniqueConstraint("job_id", "line", name="refused_rows_job_line_key"),
    )
    op.create_table(
        "import_segments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("worker", sa.Text, nullable=False),
        sa.Column("start_line", sa.BigInteger, nullable=False),
        sa.Column("start_offset", sa.BigInteger, nullable=False),
        sa.Column("end_line", sa.BigInteger),
        sa.Column("end_offset", sa.BigInteger),
        sa.Column("outcome", sa.Text),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.execute("CREATE SCHEMA IF NOT EXISTS import_staging")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS import_staging CASCADE")
    op.drop_table("import_segments")
    op.drop_table("refused_rows")
    op.drop_table("import_jobs")
