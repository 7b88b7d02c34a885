"""The upload's form fields, checked."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, ValidationError, field_validator

from server.api.errors import ApiError
from server.csvfile.detect import DELIMITERS
from server.csvfile.encoding import codec_name
from server.csvfile.formats import DATE_FORMATS, DECIMAL_MARKS, Formats
from server.jobs.model import JobOptions, Mode
from server.outbound import RefusedUrl, check_syntax

_DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}

# The upload as the OpenAPI schema shows it (the route streams the body itself).
UPLOAD_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["target"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "the CSV file: plain, gzipped, zipped, or a workbook "
                        "(xlsx, ods, xls)",
                    },
                    "target": {"type": "string", "description": "`table` or `schema.table`"},
                    "mode": {"type": "string", "enum": ["append", "upsert"]},
                    "key": {"type": "string", "description": "upsert: a unique constraint's name"},
                    "encoding": {
                        "type": "string",
                        "description": "any text encoding Python knows (`cp1251`, "
                        "`iso-8859-2`, `shift_jis`, …); detected when not given",
                    },
                    "delimiter": {"type": "string", "enum": [",", ";", "tab", "|"]},
                    "decimal": {
                        "type": "string",
                        "enum": list(DECIMAL_MARKS),
                        "description": "the decimal mark; its thousands separator is then "
                        "read too (`1.234,56`, `1,234.56`, `1 234,56`); detected when not given",
                    },
                    "date_format": {
                        "type": "string",
                        "enum": list(DATE_FORMATS),
                        "description": "how dates (and the date part of timestamps) are "
                        "written; detected when not given",
                    },
                    "sheet": {
                        "type": "string",
                        "description": "a workbook's sheet: its name or its position from 1; "
                        "the first visible sheet when not given",
                    },
                    "mapping": {
                        "type": "string",
                        "description": "JSON object: CSV header → column",
                    },
                    "null_markers": {"type": "string", "description": "comma-separated"},
                    "max_errors": {"type": "integer", "minimum": 0},
                    "max_error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                    "source_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "instead of a file part: an http(s) URL the file is "
                        "downloaded from (public addresses only, unless "
                        "OUTBOUND_ALLOW_NETWORKS allows more)",
                    },
                    "dry_run": {
                        "type": "boolean",
                        "description": "validate the whole file into staging and stop "
                        "(status `validated`), the target untouched, until "
                        "`POST /imports/{id}/commit`",
                    },
                    "callback_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "posted to when the job ends (a signed webhook); "
                        "the tenant's default endpoint when not given",
                    },
                },
            }
        }
    },
}


class ImportOptions(BaseModel):
    target: str = Field(min_length=1, max_length=200)
    mode: Mode = "append"
    key: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    date_format: str | None = None
    sheet: str | None = Field(default=None, max_length=255)
    null_markers: list[str] = [""]
    mapping: dict[str, str] = {}
    max_errors: int | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    callback_url: str | None = None
    source_url: str | None = None
    dry_run: bool = False

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            name = codec_name(value)
        except (LookupError, ValueError):
            raise ValueError(f"{value!r} is not a text encoding Python knows") from None
        # Its byte-order mark is skipped as any other encoding's is.
        return "utf-8" if name == "utf-8-sig" else name

    @field_validator("callback_url", "source_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            try:
                check_syntax(value)
            except RefusedUrl as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("delimiter")
    @classmethod
    def _known_delimiter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _DELIMITER_NAMES.get(value.lower(), value)
        if value not in DELIMITERS:
            raise ValueError("must be one of , ; tab |")
        return value

    @field_validator("decimal")
    @classmethod
    def _known_decimal(cls, value: str | None) -> str | None:
        if value is not None and value not in DECIMAL_MARKS:
            raise ValueError("must be . or ,")
        return value

    @field_validator("date_format")
    @classmethod
    def _known_date_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in DATE_FORMATS:
            raise ValueError(f"must be one of {', '.join(DATE_FORMATS)}")
        return value.upper()

    @field_validator("null_markers", mode="before")
    @classmethod
    def _split_markers(cls, value: object) -> object:
        if isinstance(value, str):
            return value.split(",")
        return value

    @field_validator("mapping", mode="before")
    @classmethod
    def _parse_mapping(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def formats(self) -> Formats:
        return Formats(self.decimal, self.date_format)

    def for_workbook(self) -> ImportOptions:
        """A sheet read into CSV is UTF-8 with commas, its numbers and dates as PostgreSQL
        reads them (the cells' types, not their display): nothing is left to detect."""
        return self.model_copy(
            update={"encoding": "utf-8", "delimiter": ",", "decimal": None, "date_format": None}
        )

    def job_options(self, formats: Formats) -> JobOptions:
        """What the worker needs to know of the options, kept on the job; `formats` are
        the ones the file was found to use."""
        return JobOptions(
            tuple(self.null_markers),
            self.mapping,
            self.max_errors,
            self.max_error_rate,
            formats.decimal,
            formats.date_format,
            dry_run=self.dry_run,
        )


def parse_options(fields: dict[str, str]) -> ImportOptions:
    known = sorted(ImportOptions.model_fields)
    if unknown := [name for name in fields if name not in known]:
        raise ApiError(
            422,
            "unknown_field",
            f"{unknown[0][:100]!r} is not an upload field (a typo?); the fields are "
            f"file, {', '.join(known)}",
            field=unknown[0][:100],
            fields=["file", *known],
        )
    if "target" not in fields:
        raise ApiError(
            422,
            "missing_target",
            "the upload has no `target` field naming the table to import into",
        )
    if nul := [name for name, value in fields.items() if "\x00" in value]:
        raise ApiError(422, "invalid_option", f"{', '.join(nul)}: NUL bytes are not allowed")
    try:
        return ImportOptions.model_validate(
            {k: v for k, v in fields.items() if v != "" or k == "null_markers"}
        )
    except ValidationError as error:
        named = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        field = named.pop() if len(named) == 1 else None
        raise ApiError(422, "invalid_option", _describe(error), field=field) from None
    except ValueError as error:
        raise ApiError(422, "invalid_option", _describe(error)) from None


def _describe(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
    return str(error)
