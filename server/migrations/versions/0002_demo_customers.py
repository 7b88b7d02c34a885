"""A demo target table, so that the sample CSV imports out of the box.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS public.customers (
            id          bigint PRIMARY KEY,
            email       text NOT NULL,
            name        text,
            signup_date date,
            balance     numeric(12, 2),
            country     char(2),
            active      boolean NOT NULL DEFAULT true,
            notes       text
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS public.customers")
