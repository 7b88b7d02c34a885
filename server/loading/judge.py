"""PostgreSQL's verdict on the values a converter could not decide.

Each value is read by its column's input function exactly as COPY would read it (with the
type's I/O parameter and the column's type modifier), all of a batch's questions in one
statement. A refusal keeps PostgreSQL's own words; its code says what kind of problem it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.csvfile.convert import NOT_A, Pending, Problem, RowConverter
from server.targets import Column

# The function that asks (migration 0005): its error state and message, or NULLs.
_ASK = """
SELECT q.n, r.state, r.message
FROM unnest(%s::text[], %s::oid[], %s::oid[], %s::int[], %s::int[])
     WITH ORDINALITY AS q(value, input, io_param, typmod, args, n),
     LATERAL import_staging.input_problem(q.value, q.input, q.io_param, q.typmod, q.args) r
WHERE r.state IS NOT NULL
"""

# What a refusal is, by its SQLSTATE; an invalid representation (or a date that does not
# exist, 22008) is named after the type.
_BY_STATE = {
    "22003": "out_of_range",
    "22001": "too_long",
    "22021": "encoding",
    "22P05": "unsupported_character",
    "54001": "too_deep",
    "23514": "check_violation",
    "23502": "not_null",
}


def code_for(column: Column, state: str) -> str:
    return _BY_STATE.get(state) or NOT_A.get(column.type, "invalid_value")


def settle(
    cursor: Any, converter: RowConverter, pending: Sequence[Pending]
) -> list[str | list[Problem]]:
    """Each pending record as a COPY line or its problems, in the order given."""
    questions = [(record, position, text) for record in pending for position, text in record.asks]
    verdicts: list[dict[int, Problem]] = [{} for _ in pending]
    index = {id(record): n for n, record in enumerate(pending)}
    asked = []
    for record, position, text in questions:
        column = converter.column_at(position)
        if "\x00" in text:
            problem = Problem(
                column.name, "nul_character", "holds a NUL character, which PostgreSQL cannot store"
            )
            verdicts[index[id(record)]][position] = problem
        else:
            asked.append((record, position, text, column))
    for n, state, message in _ask(cursor, [(column, text) for _, _, text, column in asked]):
        record, position, _, column = asked[n - 1]
        verdicts[index[id(record)]][position] = Problem(
            column.name, code_for(column, state), message
        )
    return [converter.settle(record, verdicts[n]) for n, record in enumerate(pending)]


def _ask(cursor: Any, questions: Sequence[tuple[Column, str]]) -> list[tuple[int, str, str]]:
    if not questions:
        return []
    readers = [column.reader for column, _ in questions]
    if any(reader is None for reader in readers):
        raise ValueError("a column without its input function cannot be judged")
    cursor.execute(
        _ASK,
        (
            [text for _, text in questions],
            [reader.function for reader in readers if reader is not None],
            [reader.io_param for reader in readers if reader is not None],
            [reader.typmod for reader in readers if reader is not None],
            [reader.args for reader in readers if reader is not None],
        ),
    )
    found: list[tuple[int, str, str]] = cursor.fetchall()
    return found
