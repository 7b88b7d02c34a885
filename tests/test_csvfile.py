"""The pure CSV logic: detection, resumable reading, header matching, conversion."""

from __future__ import annotations

import codecs
import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.csvfile.columns import BatchConverter
from server.csvfile.convert import Ask, Pending, Problem, Refusal, RowConverter, converter_for
from server.csvfile.detect import EmptyFile, NotText, detect_layout
from server.csvfile.header import HeaderProblem, check_key, match_header, normalise
from server.csvfile.reader import Record, RecordReader, split_lines
from server.targets import Column, Target


def records(data: bytes, **overrides: str) -> list[tuple[int, list[str], str | None]]:
    layout = detect_layout(data[:65536], **overrides)
    reader = RecordReader(io.BytesIO(data), layout, layout.bom_bytes, 1)
    return [(record.line, record.fields, record.problem) for record in reader]


@pytest.mark.parametrize(
    ("data", "encoding", "bom", "delimiter", "terminator"),
    [
        (b"a,b\n1,2\n", "utf-8", 0, ",", "\n"),
        (codecs.BOM_UTF8 + b"a;b\r\n1;2\r\n", "utf-8", 3, ";", "\r\n"),
        (codecs.BOM_UTF16_LE + "a\tb\n1\t2\n".encode("utf-16-le"), "utf-16-le", 2, "\t", "\n"),
        (codecs.BOM_UTF16_BE + "a|b\n1|2\n".encode("utf-16-be"), "utf-16-be", 2, "|", "\n"),
        ("nom;ville\nRené;Besançon\n".encode("cp1252"), "cp1252", 0, ";", "\n"),
        (b"a,b\r1,2\r", "utf-8", 0, ",", "\r"),
        (b'a,b\r1,"x\ny"\r', "utf-8", 0, ",", "\r"),
        (b'a,b\r\n1,"x\ry"\r\n', "utf-8", 0, ",", "\r\n"),
        (b'a,b\n"x;y;z",2\n', "utf-8", 0, ",", "\n"),
        # UTF-8 with a damaged byte; a header longer than the sample detection reads.
        (b"a,b\n1,Zo\xc3\xab\n2,\xff\n3,Chlo\xc3\xa9\n", "utf-8", 0, ",", "\n"),
        (";".join(f"column_{i}" for i in range(9000)).encode() + b"\n", "utf-8", 0, ";", "\n"),
    ],
)
def test_layout_is_detected_from_the_first_bytes(
    data: bytes, encoding: str, bom: int, delimiter: str, terminator: str
) -> None:
    layout = detect_layout(data)
    assert (layout.encoding, layout.bom_bytes, layout.delimiter, layout.terminator) == (
        encoding,
        bom,
        delimiter,
        terminator,
    )


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"PK\x03\x04\x14\x00\x00"]
)
def test_binary_files_are_not_text(data: bytes) -> None:
    with pytest.raises(NotText):
        detect_layout(data)


@pytest.mark.parametrize("data", [b"", b"  \n\n"])
def test_empty_files_are_empty(data: bytes) -> None:
    with pytest.raises(EmptyFile):
        detect_layout(data)


def test_records_keep_their_first_line_number_across_quoted_newlines() -> None:
    data = b'id,note\n1,"two\nlines"\n2,"say ""hi"""\n\n3,last'
    assert records(data) == [
        (1, ["id", "note"], None),
        (2, ["1", "two\nlines"], None),
        (4, ["2", 'say "hi"'], None),
        (6, ["3", "last"], None),
    ]


def test_a_reader_opened_at_any_record_boundary_reads_the_same_rest() -> None:
    data = 'id,note\r\n1,"a\r\nb"\r\n2,plain\r\n3,"x,y"\r\n4,é\r\n'.encode()
    layout = detect_layout(data)
    whole = list(RecordReader(io.BytesIO(data), layout, 0, 1))
    for index, record in enumerate(whole):
        resumed = RecordReader(io.BytesIO(data), layout, record.end_offset, record.next_line)
        assert [(r.line, r.fields) for r in resumed] == [
            (r.line, r.fields) for r in whole[index + 1 :]
        ]


def test_utf16_offsets_resume_exactly() -> None:
    data = codecs.BOM_UTF16_LE + "a,b\n1,ö\n2,\U0001f600\n3,z\n".encode("utf-16-le")
    layout = detect_layout(data)
    first = list(RecordReader(io.BytesIO(data), layout, layout.bom_bytes, 1))
    rest = RecordReader(io.BytesIO(data), layout, first[1].end_offset, first[1].next_line)
    assert [r.fields for r in rest] == [["2", "\U0001f600"], ["3", "z"]]


def test_problems_are_reported_on_the_record_and_reading_goes_on() -> None:
    data = b'a,b\n1,\xff\xfe\n2,ok\n3,"open'
    assert records(data, encoding="utf-8") == [
        (1, ["a", "b"], None),
        (2, ["1", "\ufffd\ufffd"], "encoding"),
        (3, ["2", "ok"], None),
        (4, ["3", "open"], "unterminated_quote"),
    ]


def test_an_over_long_line_is_cut_and_skipped_not_held() -> None:
    data = b"short\n" + b"x" * 5000 + b"\nafter\n"
    lines = list(split_lines(io.BytesIO(data), b"\n", 1, max_line=1000))
    assert [(len(chunk), cut) for chunk, cut in lines] == [(6, 0), (1000, 4001), (6, 0)]


TARGET = Target(
    "public",
    "people",
    (
        Column("id", "int8", nullable=False, has_default=False),
        Column("full_name", "varchar", nullable=False, has_default=False, length=5),
        Column("signup_date", "date", nullable=True, has_default=False),
        Column("created", "timestamptz", nullable=False, has_default=True),
    ),
    primary_key=("id",),
    unique_keys={"people_pkey": ("id",)},
)


def test_headers_match_columns_by_normalised_name() -> None:
    assert normalise("  Signup-Date ") == "signup_date"
    matched = match_header(["ID", "Full Name", " signup date", "extra"], TARGET)
    assert matched.columns == ["id", "full_name", "signup_date", None]
    assert matched.extra == ["extra"]


def test_an_explicit_mapping_fills_the_rest() -> None:
    matched = match_header(["id", "who"], TARGET, {"who": "full_name"})
    assert matched.used == ["id", "full_name"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (["id"], "missing_columns"),
        (["id", "full_name", "ID"], "duplicate_header"),
        (["id", "full_name", " "], "empty_header"),
        (["nothing", "here"], "no_matching_columns"),
    ],
)
def test_bad_headers_name_the_problem(header: list[str], code: str) -> None:
    with pytest.raises(HeaderProblem) as raised:
        match_header(header, TARGET)
    assert raised.value.code == code


def test_upsert_needs_the_key_in_the_header() -> None:
    matched = match_header(["id", "full_name"], TARGET)
    assert check_key(matched, TARGET, None) == ["id"]
    with pytest.raises(HeaderProblem, match="no unique key named"):
        check_key(matched, TARGET, "nope")


def column(kind: str, **extra: object) -> Column:
    return Column("c", kind, nullable=True, has_default=False, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("col", "value", "expected"),
    [
        (column("int2"), "42", "42"),
        (column("int8"), "-9223372036854775808", "-9223372036854775808"),
        (column("numeric", precision=5, scale=2), "-999.99", "-999.99"),
        (column("numeric", precision=3, scale=3), "0.125", "0.125"),
        (column("float8"), "1.5e30", "1.5e30"),
        (column("bool"), "Yes", "Yes"),
        (column("date"), "2024-02-29", "2024-02-29"),
        (column("timestamp"), "2024-01-02 03:04:05", "2024-01-02 03:04:05"),
        (column("timestamptz"), "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        (column("timestamptz"), "2024-01-02T03:04", "2024-01-02T03:04"),
        (
            column("uuid"),
            "12345678-1234-5678-1234-567812345678",
            "12345678-1234-5678-1234-567812345678",
        ),
        (column("varchar", length=3), "abc", "abc"),
        (column("varchar", length=3), "abc   ", "abc   "),
        (column("bpchar", length=2), "FR  ", "FR  "),
        (column("text"), "tab\there\\", "tab\\there\\\\"),
        (column("jsonb"), '{"a": [1, 2]}', '{"a": [1, 2]}'),
        (column("mood", labels=("happy", "sad")), "sad", "sad"),
    ],
)
def test_values_in_a_plain_form_go_to_copy_as_written(
    col: Column, value: str, expected: str
) -> None:
    assert converter_for(col)(value) == expected


@pytest.mark.parametrize(
    ("col", "value"),
    [
        (column("int2"), " 42 "),
        (column("int4"), "1.0"),
        (column("int4"), "1_000"),
        (column("int4"), "\u0661\u0662"),
        (column("numeric", precision=5, scale=2), "999.995"),
        (column("numeric"), "1e3"),
        (column("numeric"), "1e-999999"),
        (column("float4"), "1e39"),
        (column("float8"), "1e999"),
        (column("bool"), "maybe"),
        (column("date"), "2023-02-30"),
        (column("timestamp"), "2020-01-01T00:00:00.1234567"),
        (column("uuid"), "{12345678-1234-5678-1234-567812345678}"),
        (column("json"), "{oops}"),
        (column("json"), "NaN"),
        (column("jsonb"), "[" * 100_000 + "]" * 100_000),
        (column("jsonb"), '"\\u0000"'),
        (column("inet"), "::1"),
        (column("cidr"), "10.0.0.0/8"),
    ],
)
def test_values_a_converter_cannot_decide_are_asked_of_postgresql(col: Column, value: str) -> None:
    with pytest.raises(Ask) as asked:
        converter_for(col)(value)
    assert asked.value.text == value


@pytest.mark.parametrize(
    ("col", "value", "code"),
    [
        (column("int2"), "32768", "out_of_range"),
        (column("int8"), "1" + "0" * 5000, "out_of_range"),
        (column("date"), "02/03/2023", "ambiguous_date"),
        (column("timestamptz"), "yesterday", "relative_date"),
        (column("timestamp"), "2024-01-02T03:04:05+02:00", "unexpected_time_zone"),
        (column("varchar", length=3), "abcd", "too_long"),
        (column("bpchar", length=2), "FRA ", "too_long"),
        (column("text"), "nul\x00here", "nul_character"),
        (column("mood", labels=("happy", "sad")), "meh", "not_allowed"),
    ],
)
def test_values_postgresql_would_refuse_are_refused_with_a_code(
    col: Column, value: str, code: str
) -> None:
    with pytest.raises(Refusal) as raised:
        converter_for(col)(value)
    assert raised.value.code == code


def test_a_row_becomes_one_copy_line_or_all_its_problems() -> None:
    columns = [TARGET.columns[0], TARGET.columns[1], None, TARGET.columns[2]]
    converter = RowConverter(columns, [""])
    line = converter.copy_line(["7", "Ann", "ignored", ""], 12, 345, 17)
    assert line == "7\tAnn\t\\N\t12\t345\t17\n"
    refused = converter.copy_line(["7", "", "ignored", "02/03/2023"], 3, 0)
    assert isinstance(refused, list)
    assert [(p.column, p.code) for p in refused] == [
        ("full_name", "not_null"),
        ("signup_date", "ambiguous_date"),
    ]
    short = converter.copy_line(["1", "a"], 4, 0)
    assert isinstance(short, list)
    assert short[0].code == "field_count"


def test_a_row_with_values_to_ask_waits_for_postgresqls_verdict() -> None:
    columns = [TARGET.columns[0], TARGET.columns[1], None, TARGET.columns[2]]
    converter = RowConverter(columns, [""])
    pending = converter.copy_line([" 7", "", "ignored", "2023-13-01"], 3, 0)
    assert isinstance(pending, Pending)
    assert pending.asks == [(0, " 7"), (2, "2023-13-01")]
    assert [(p.column, p.code) for p in pending.problems] == [("full_name", "not_null")]
    verdict = Problem("signup_date", "out_of_range", "date/time field value out of range")
    settled = converter.settle(pending, {2: verdict})
    assert isinstance(settled, list)
    assert [(p.column, p.code) for p in settled] == [
        ("full_name", "not_null"),
        ("signup_date", "out_of_range"),
    ]
    accepted = converter.copy_line([" 7", "Ann", "x", "Jan 2 2024"], 9, 99, 20)
    assert isinstance(accepted, Pending)
    assert converter.settle(accepted, {}) == " 7\tAnn\tJan 2 2024\t9\t99\t20\n"


MIXED = [
    Column("id", "int8", False, False),
    Column("price", "numeric", True, False, precision=6, scale=2),
    Column("day", "date", True, False),
    Column("seen", "timestamptz", True, False),
    Column("ok", "bool", True, False),
    Column("code", "varchar", True, False, length=3),
    Column("doc", "jsonb", True, False),
    Column("note", "text", False, False),
    Column("mood", "mood", True, False, labels=("happy", "sad")),
]
# For each column, values of its own (plain, most of the time, so that whole columns are
# plain), null markers, and the odd ones of any column.
OWN = [
    ["1", "-42", "9000000000"],
    ["12.50", "0", "-3.1"],
    ["2024-01-31", "1999-12-31"],
    ["2024-01-31T10:00:00Z", "2024-01-31 10:00"],
    ["true", "F", "yes"],
    ["abc", "x", ""],
    ['{"a": 1}', "[]"],
    ["plain", "two words", "tab\there", "back\\slash"],
    ["sad", "happy"],
]
ODD = [
    "",
    "NA",
    "\\N",
    " 1",
    "1e3",
    "2024-02-29",
    "2023-02-30",
    "maybe",
    "toolong",
    "[1,",
    "meh",
    "01/02/2024",
    "2024-01-01T00:00:00+02:00",
    "\n",
    "-0",
    "a\x00b",
]


def cell(own: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(own * 6 + ["", "NA", "\\N"] * 2 + ODD)


ROWS = st.lists(
    st.tuples(*(cell(own) for own in OWN)).map(list) | st.lists(cell(ODD), max_size=10),
    max_size=30,
)


@settings(max_examples=500, deadline=None)
@given(rows=ROWS, nulls=st.sampled_from([[""], ["NA"], ["", "NA"], ["\\N"]]))
# A null marker that COPY's text format must escape, in a text column that is plain.
@example(rows=[["1", "0", "", "", "t", "\\N", "[]", "x", "sad"]], nulls=["\\N"])
def test_a_batch_converted_a_column_at_a_time_is_what_each_record_alone_becomes(
    rows: list[list[str]], nulls: list[str]
) -> None:
    records = [Record(n + 2, row, [], n * 10, n * 10 + 9, n + 3) for n, row in enumerate(rows)]
    one_by_one = RowConverter(list(MIXED), nulls)
    at_once = BatchConverter(list(MIXED), nulls)
    assert at_once.copy_lines(records) == one_by_one.copy_lines(records)
