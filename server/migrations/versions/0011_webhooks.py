"""Webhooks: a job's callback URL, each tenant's signing secret and default endpoint, and
one delivery per job end, made by a trigger in the same transaction that ends the job
(however it ends: a worker, a cancel, the sweeper, an operator's SQL).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ENDED = """
CREATE FUNCTION csv_import_job_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (job_id, event, url)
    VALUES (NEW.id, 'import.' || NEW.status, NEW.callback_url);
    RETURN NULL;
END
$$
"""

_TRIGGER = """
CREATE TRIGGER import_jobs_ended AFTER UPDATE OF status ON import_jobs
FOR EACH ROW WHEN (
    OLD.status IN ('queued', 'running')
    AND NEW.status IN ('completed', 'failed', 'cancelled')
    AND NEW.callback_url IS NOT NULL
)
EXECUTE FUNCTION csv_import_job_ended()
"""


def upgrade() -> None:
    op.add_column("import_jobs", sa.Column("callback_url", sa.Text))
    op.create_table(
        "tenant_webhooks",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("default_url", sa.Text),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
        ),
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_check"
        ),
    )
    op.create_index(
        "webhook_deliveries_unpublished_idx",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.execute(_ENDED)
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER import_jobs_ended ON import_jobs")
    op.execute("DROP FUNCTION csv_import_job_ended()")
    op.drop_table("webhook_deliveries")
    op.drop_table("tenant_webhooks")
    op.drop_column("import_jobs", "callback_url")
