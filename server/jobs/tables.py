"""The tables as SQLAlchemy sees them. Migrations create them; a test checks they agree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from server.db import metadata
from server.jobs.status import JobStatus

_STATUSES = tuple(status.value for status in JobStatus)

import_jobs = Table(
    "import_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("key_columns", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'queued'")),
    Column("file_key", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("bytes_total", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("encoding", Text, nullable=False),
    Column("encoding_confidence", Float),
    Column("delimiter", Text, nullable=False),
    Column("line_terminator", Text, nullable=False),
    Column("header", JSONB, nullable=False),
    Column("column_map", JSONB, nullable=False),
    Column("extra_columns", JSONB, nullable=False),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("idempotency_key", Text),
    # Where the job's end is announced (a webhook); migration 0011.
    Column("callback_url", Text),
    Column("checkpoint_offset", BigInteger, nullable=False, server_default=text("0")),
    Column("checkpoint_line", BigInteger, nullable=False, server_default=text("2")),
    Column("rows_loaded", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_refused", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_published", BigInteger),
    Column("rows_superseded", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_careful", BigInteger, nullable=False, server_default=text("0")),
    Column("segments", Integer, nullable=False, server_default=text("0")),
    Column("retries", Integer, nullable=False, server_default=text("0")),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("error", Text),
    Column("warnings", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("cleaned_at", DateTime(timezone=True)),
    CheckConstraint(f"status IN {_STATUSES}", name="import_jobs_status_check"),
    CheckConstraint("mode IN ('append', 'upsert')", name="import_jobs_mode_check"),
    UniqueConstraint("tenant", "idempotency_key", name="import_jobs_tenant_idempotency_key_key"),
)
Index("import_jobs_tenant_created_at_idx", import_jobs.c.tenant, import_jobs.c.created_at.desc())
Index(
    "import_jobs_unpublished_idx",
    import_jobs.c.created_at,
    postgresql_where=text("published_at IS NULL AND status = 'queued'"),
)
Index(
    "import_jobs_active_updated_at_idx",
    import_jobs.c.updated_at,
    postgresql_where=text("status IN ('queued', 'running')"),
)
Index(
    "import_jobs_uncleaned_idx",
    import_jobs.c.finished_at,
    postgresql_where=text("cleaned_at IS NULL AND finished_at IS NOT NULL"),
)

refused_rows = Table(
    "refused_rows",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("import_jobs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("line", BigInteger, nullable=False),
    Column("column", Text),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("errors", JSONB, nullable=False),
    UniqueConstraint("job_id", "line", name="refused_rows_job_line_key"),
)

import_segments = Table(
    "import_segments",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("import_jobs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("worker", Text, nullable=False),
    Column("start_line", BigInteger, nullable=False),
    Column("start_offset", BigInteger, nullable=False),
    Column("end_line", BigInteger),
    Column("end_offset", BigInteger),
    Column("outcome", Text),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
)
