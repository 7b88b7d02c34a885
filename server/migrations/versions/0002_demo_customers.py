"""Nothing: the demo table is made by local setup (`make run`), never by a migration.

It once created `public.customers` here; databases migrated then keep the table, which is
the user's from then on. A production database never gets it, and no downgrade drops it.

Revision ID: 0002
Revises: 0001
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
