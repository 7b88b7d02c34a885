"""API keys, and the tenant that owns each job.

Jobs made before keys existed belong to the tenant `default` (the one a fresh local
install gets its first key for). An Idempotency-Key is now unique per tenant: two tenants
never see, nor block, each other's jobs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("targets", JSONB),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.add_column(
        "import_jobs", sa.Column("tenant", sa.Text, nullable=False, server_default="default")
    )
    op.alter_column("import_jobs", "tenant", server_default=None)
    op.drop_constraint("import_jobs_idempotency_key_key", "import_jobs", type_="unique")
    op.create_unique_constraint(
        "import_jobs_tenant_idempotency_key_key", "import_jobs", ["tenant", "idempotency_key"]
    )
    # Every listing is one tenant's, newest first.
    op.drop_index("import_jobs_created_at_idx", table_name="import_jobs")
    op.create_index(
        "import_jobs_tenant_created_at_idx", "import_jobs", ["tenant", sa.text("created_at DESC")]
    )


def downgrade() -> None:
    op.drop_index("import_jobs_tenant_created_at_idx", table_name="import_jobs")
    op.create_index("import_jobs_created_at_idx", "import_jobs", [sa.text("created_at DESC")])
    op.drop_constraint("import_jobs_tenant_idempotency_key_key", "import_jobs", type_="unique")
    op.create_unique_constraint(
        "import_jobs_idempotency_key_key", "import_jobs", ["idempotency_key"]
    )
    op.drop_column("import_jobs", "tenant")
    op.drop_table("api_keys")
