"""The benchmark's file: N rows of 8 mixed columns, about 100 bytes a row, the same every time.

The columns are what a real customer export holds: a bigint key, an email, a name, a date,
a numeric(12,2), a char(2) country, a boolean, and free text with commas and quotes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

TABLE_DDL = """(
    id bigint PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    born date,
    balance numeric(12,2),
    country char(2),
    active boolean,
    note text
)"""
COLUMNS = ("id", "email", "name", "born", "balance", "country", "active", "note")
HEADER = ",".join(COLUMNS) + "\n"
FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Hedy",
    "John",
    "Sophie",
    "Guido",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Lamarr",
    "McCarthy",
    "Wilson",
    "van Rossum",
]
COUNTRIES = ["FR", "DE", "GB", "US", "NL", "IT", "ES", "SE", "PL", "JP", "BR", "CA"]
NOTES = [
    "prefers email; never calls",
    '"called twice, asked for ""the manager"", then left"',
    '"paid late, twice; reminder sent"',
    '"moved to Lyon, new address pending"',
    "",
    "VIP since 2019",
    '"says: ""it works, finally"""',
]


def rows(count: int, seed: int = 7) -> Iterator[str]:
    pick = random.Random(seed)  # noqa: S311 - test data, not secrets
    for key in range(1, count + 1):
        first, last = pick.choice(FIRST), pick.choice(LAST)
        yield (
            f"{key},{first.lower()}.{last.lower().replace(' ', '')}{key}@mail.com,"
            f"{first} {last},{pick.randint(1940, 2005)}-{pick.randint(1, 12):02d}-"
            f"{pick.randint(1, 28):02d},{pick.randint(-99999, 9999999) / 100:.2f},"
            f"{pick.choice(COUNTRIES)},{pick.choice(('true', 'false'))},"
            f"{pick.choice(NOTES)}\n"
        )


def write(path: Path, count: int, seed: int = 7) -> Path:
    """Write the file once; a file already there with the same name is reused."""
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with partial.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        chunk: list[str] = []
        for line in rows(count, seed):
            chunk.append(line)
            if len(chunk) == 50_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    partial.rename(path)
    return path
