"""Dry runs: the status `validated` (a job staged and checked, waiting for a commit), which
can end as cancelled (a cancel, or its expiry) and so make a webhook delivery.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_STATUSES = "('queued', 'running', 'completed', 'failed', 'cancelled', 'validated')"
_BEFORE = "('queued', 'running', 'completed', 'failed', 'cancelled')"


def _trigger(ending_from: str) -> str:
    return f"""
CREATE TRIGGER import_jobs_ended AFTER UPDATE OF status ON import_jobs
FOR EACH ROW WHEN (
    OLD.status IN {ending_from}
    AND NEW.status IN ('completed', 'failed', 'cancelled')
    AND NEW.callback_url IS NOT NULL
)
EXECUTE FUNCTION csv_import_job_ended()
"""


def upgrade() -> None:
    op.drop_constraint("import_jobs_status_check", "import_jobs", type_="check")
    op.create_check_constraint("import_jobs_status_check", "import_jobs", f"status IN {_STATUSES}")
    op.execute("DROP TRIGGER import_jobs_ended ON import_jobs")
    op.execute(_trigger("('queued', 'running', 'validated')"))


def downgrade() -> None:
    op.execute("UPDATE import_jobs SET status = 'cancelled' WHERE status = 'validated'")
    op.execute("DROP TRIGGER import_jobs_ended ON import_jobs")
    op.execute(_trigger("('queued', 'running')"))
    op.drop_constraint("import_jobs_status_check", "import_jobs", type_="check")
    op.create_check_constraint("import_jobs_status_check", "import_jobs", f"status IN {_BEFORE}")
