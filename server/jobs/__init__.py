"""Job records and refused rows: the source of truth for every import.

status.py      the statuses of a job, and which of them are final
model.py       Job, JobOptions, Checkpoint, RefusedRow: typed and frozen
tables.py      the tables as SQLAlchemy sees them (migrations create them)
repository.py  every statement on the job tables
migrate.py     running the Alembic migrations from code
"""
