"""The webhook tables as SQLAlchemy sees them. Migration 0011 creates them."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from server.db import metadata

# One row per job end with a callback URL, made by the trigger `import_jobs_ended`
# (migration 0011) in the transaction that ends the job; its id is the webhook's id.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("import_jobs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("event", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    # The body, made at the first attempt: every attempt sends the same bytes.
    Column("body", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="webhook_deliveries_status_check"
    ),
)
Index(
    "webhook_deliveries_unpublished_idx",
    webhook_deliveries.c.created_at,
    postgresql_where=text("published_at IS NULL"),
)

# A tenant's webhook signing secret (shown once, by `csv-import-keys webhook`) and the
# endpoint its jobs call when an upload names none.
tenant_webhooks = Table(
    "tenant_webhooks",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("secret", Text, nullable=False),
    Column("default_url", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
