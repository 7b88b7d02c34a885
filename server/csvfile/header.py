"""Match a CSV header to a target's columns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.targets import Target

_SEPARATORS = re.compile(r"[\s_\-]+")


class HeaderProblem(ValueError):
    """The header cannot be matched to the target; `code` and `columns` say why."""

    def __init__(self, code: str, message: str, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.columns = columns or []


@dataclass(frozen=True)
class ColumnMap:
    columns: list[str | None]  # per CSV field: the target column it fills, or None
    extra: list[str]  # CSV headers that fill no column

    @property
    def used(self) -> list[str]:
        return [column for column in self.columns if column is not None]


def normalise(name: str) -> str:
    """`  Signup Date ` and `signup_date` are the same name."""
    return _SEPARATORS.sub("_", name.strip().lstrip("\ufeff").strip().lower()).strip("_")


@dataclass(frozen=True)
class HeaderMatch:
    header: str
    column: str | None  # the column it fills, or None: ignored
    by: str | None  # "mapping", "name" or "normalised name"


def describe_matches(
    header: list[str], target: Target, mapping: dict[str, str] | None = None
) -> list[HeaderMatch]:
    """How each header finds its column, as `match_header` matches them, without refusing
    anything: what a person fixing the mapping needs to see."""
    names = {column.name for column in target.columns}
    by_name = {normalise(column.name): column.name for column in target.columns}
    found = []
    for name in header:
        if (mapping or {}).get(name) in names:
            found.append(HeaderMatch(name, (mapping or {})[name], "mapping"))
        elif name in names:
            found.append(HeaderMatch(name, name, "name"))
        elif normalise(name) in by_name:
            found.append(HeaderMatch(name, by_name[normalise(name)], "normalised name"))
        else:
            found.append(HeaderMatch(name, None, None))
    return found


def match_header(
    header: list[str], target: Target, mapping: dict[str, str] | None = None
) -> ColumnMap:
    _check_names(header)
    mapping = mapping or {}
    by_name = {normalise(column.name): column.name for column in target.columns}
    unknown = [
        name
        for name, column in mapping.items()
        if name not in header or column not in {c.name for c in target.columns}
    ]
    if unknown:
        raise HeaderProblem(
            "unknown_mapping",
            f"mapping names headers or columns that do not exist: {', '.join(unknown)}",
            unknown,
        )
    columns = [mapping.get(name) or by_name.get(normalise(name)) for name in header]
    _check_targets_once(header, columns)
    result = ColumnMap(
        columns, [name for name, column in zip(header, columns, strict=True) if column is None]
    )
    _check_required(result, target)
    return result


def _check_names(header: list[str]) -> None:
    empty = [str(position) for position, name in enumerate(header, 1) if not name.strip()]
    if empty:
        raise HeaderProblem(
            "empty_header", f"header has empty names at positions {', '.join(empty)}", empty
        )
    seen: dict[str, str] = {}
    for name in header:
        key = normalise(name)
        if key in seen:
            raise HeaderProblem(
                "duplicate_header",
                f"header names {seen[key]!r} and {name!r} are the same column",
                [seen[key], name],
            )
        seen[key] = name


def _check_targets_once(header: list[str], columns: list[str | None]) -> None:
    filled: dict[str, str] = {}
    for name, column in zip(header, columns, strict=True):
        if column is None:
            continue
        if column in filled:
            raise HeaderProblem(
                "duplicate_column",
                f"headers {filled[column]!r} and {name!r} both fill column {column!r}",
                [column],
            )
        filled[column] = name


def _check_required(result: ColumnMap, target: Target) -> None:
    if not result.used:
        raise HeaderProblem(
            "no_matching_columns",
            f"no header matches a column of {target.name}; its columns are "
            f"{', '.join(column.name for column in target.columns)}",
        )
    missing = [
        column.name
        for column in target.columns
        if column.required and column.name not in result.used
    ]
    if missing:
        raise HeaderProblem(
            "missing_columns",
            f"required columns missing from the header: {', '.join(missing)}",
            missing,
        )


def check_key(result: ColumnMap, target: Target, key: str | None) -> list[str]:
    """The key columns an upsert matches on: the primary key, or a named unique key."""
    if key:
        if key not in target.unique_keys:
            raise HeaderProblem(
                "unknown_key",
                f"{target.name} has no unique key named {key!r}; "
                f"it has: {', '.join(target.unique_keys) or 'none'}",
                [key],
            )
        columns = list(target.unique_keys[key])
    else:
        columns = list(target.primary_key)
    if not columns:
        raise HeaderProblem(
            "no_key", f"{target.name} has no primary key to upsert on; name a unique key with `key`"
        )
    missing = [column for column in columns if column not in result.used]
    if missing:
        raise HeaderProblem(
            "missing_key_columns",
            f"upsert needs the key columns in the header: {', '.join(missing)}",
            missing,
        )
    return columns
