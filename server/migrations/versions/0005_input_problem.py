"""A function that asks a type's input function about one value, as COPY would.

The loader's converters decide what they can decide for certain; every other value is
read by PostgreSQL itself, with this function, so that PostgreSQL is the judge of every
value: it returns the error a COPY of the value would raise (its SQLSTATE and message), or
NULLs when the value is fine.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION import_staging.input_problem(
            value text, input oid, io_param oid, typmod integer, args integer,
            OUT state text, OUT message text)
        LANGUAGE plpgsql AS $$
        BEGIN
            IF args = 1 THEN
                EXECUTE format('SELECT %s($1::cstring)', input::regproc) USING value;
            ELSIF args = 2 THEN
                EXECUTE format('SELECT %s($1::cstring, $2)', input::regproc)
                    USING value, io_param;
            ELSE
                EXECUTE format('SELECT %s($1::cstring, $2, $3)', input::regproc)
                    USING value, io_param, typmod;
            END IF;
        EXCEPTION WHEN others THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS import_staging.input_problem(text, oid, oid, integer, integer)"
    )
