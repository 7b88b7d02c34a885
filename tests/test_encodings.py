"""Files in the encodings people's programs write: detected, recorded on the job, and every
text value landing as the Unicode it was written from.

The files are written by Python's `csv` module in each encoding, from names and places of
the language the encoding is made for, as an export from a local system would hold them.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy import create_engine

from server.csvfile.detect import HEAD_BYTES, detect_layout
from server.csvfile.encoding import CONFIDENT
from server.csvfile.pattern import COPY_ENCODINGS
from tests.conftest import ENV, MakeTable
from tests.harness import Database, Process
from tests.support import upload, wait_for_job

PEOPLE = {
    "cp1251": (
        "Мария Иван Ольга Сергей Наталья Дмитрий Елена Алексей Татьяна Юрий",
        "Сидорова Петров Иванова Смирнов Кузнецова Попов Соколова Лебедев Козлова Новиков",
        "Москва|Санкт-Петербург|Новосибирск|Екатеринбург|Казань|Нижний Новгород|Самара",
    ),
    "iso8859-2": (
        "Zofia Krzysztof Małgorzata Paweł Agnieszka Łukasz Józef Grażyna Wojciech Bożena",
        "Kowalska Wiśniewski Wójcik Kamiński Lewandowska Zieliński Szymańska Woźniak Dąbrowski",
        "Łódź|Kraków|Wrocław|Poznań|Gdańsk|Szczecin|Bydgoszcz|Lublin|Białystok|Częstochowa",
    ),
    "cp932": (
        "陽翔 結菜 蓮 陽葵 湊 凛 蒼 芽依 樹 紬",
        "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤",
        "東京都|大阪府|神奈川県|愛知県|埼玉県|千葉県|兵庫県|北海道|福岡県|静岡県",
    ),
    "cp1252": (
        "François Zoë Jürgen Ángel Søren Chloé Björn Inês Noël Ægir",
        "Müller Dupré O’Brien García Øster Lefèvre Straße Gonçalves Brontë Núñez",
        "Zürich|Besançon|Malmö|Córdoba|Århus|Genève|München|São Paulo|Reykjavík",
    ),
    "cp1250": (
        "Jiří Kateřina Tomáš Zuzana Ondřej Lucie Vojtěch Markéta Lukáš Anežka",
        "Dvořák Nováková Černý Procházková Kučera Veselá Horák Němcová Růžička Šťastná",
        "Praha|Brno|Ostrava|Plzeň|Liberec|Olomouc|České Budějovice|Hradec Králové|Ústí nad Labem",
    ),
    "koi8-r": (
        "Андрей Светлана Николай Ирина Павел Анна Григорий Людмила Фёдор Вера",
        "Волков Морозова Зайцев Павлова Семёнов Голубева Виноградов Богданова Воробьёв",
        "Воронеж|Пермь|Волгоград|Красноярск|Саратов|Тюмень|Ижевск|Барнаул|Ульяновск",
    ),
}
DDL = "(id int PRIMARY KEY, name text NOT NULL, city text NOT NULL, amount numeric(7, 2))"


def people(encoding: str, rows: int) -> list[tuple[int, str, str, str]]:
    first, last, cities = PEOPLE[encoding]
    draw = random.Random(encoding)
    return [
        (
            n,
            f"{draw.choice(first.split())} {draw.choice(last.split())}",
            draw.choice(cities.split("|")),
            f"{draw.randint(0, 99_999) / 100:.2f}",
        )
        for n in range(1, rows + 1)
    ]


def written(rows: list[tuple[int, str, str, str]], encoding: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["id", "name", "city", "amount"])
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


@pytest.mark.parametrize("encoding", list(PEOPLE))
@pytest.mark.parametrize("rows", [3, 100, 5_000])
def test_the_encoding_of_a_file_people_wrote_is_detected(encoding: str, rows: int) -> None:
    """Detected as an encoding that reads the file as it was written (a name that reads it
    the same way, such as ISO-8859-7 for cp1253 text without the letters they differ on,
    would do as well; none of these has one)."""
    data = written(people(encoding, rows), encoding)

    layout = detect_layout(data[:HEAD_BYTES])

    assert layout.encoding == encoding
    assert layout.encoding_confidence is not None


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_a_utf_file_is_no_guess(encoding: str) -> None:
    layout = detect_layout(written(people("cp1251", 100), encoding)[:HEAD_BYTES])

    assert layout.encoding_confidence is None


@pytest.fixture(scope="module")
def postgresql() -> Iterator[Any]:
    engine = create_engine(ENV["DATABASE_URL"])
    connection = engine.raw_connection()
    yield connection.cursor()
    connection.close()
    engine.dispose()


@pytest.mark.parametrize("encoding", sorted(set(COPY_ENCODINGS) - {"utf-8"}))
def test_postgresql_reads_every_byte_of_an_encoding_the_fast_path_takes_as_python_does(
    postgresql: Any, encoding: str
) -> None:
    """The fast path hands the file's bytes to COPY with PostgreSQL's name of the encoding;
    the careful path decodes them in Python. Both must read each byte the same way (or
    both refuse it)."""
    differing = []
    for byte in map(bytes, zip(range(0x80, 0x100), strict=False)):
        try:
            ours: str | None = byte.decode(encoding)
        except UnicodeDecodeError:
            ours = None
        postgresql.execute("SAVEPOINT byte")
        try:
            postgresql.execute(
                "SELECT convert_from(%s, %s)", (psycopg2.Binary(byte), COPY_ENCODINGS[encoding])
            )
            theirs: str | None = postgresql.fetchone()[0]
        except psycopg2.Error:
            theirs = None
        postgresql.execute("ROLLBACK TO SAVEPOINT byte")
        if ours != theirs:
            differing.append((byte.hex(), ours, theirs))

    assert differing == []


@pytest.mark.parametrize("encoding", ["cp1251", "iso8859-2", "cp932", "cp1252"])
def test_every_text_value_lands_as_it_was_written_and_the_encoding_is_on_the_job(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database, encoding: str
) -> None:
    target = table(DDL)
    rows = people(encoding, 5_000)

    job = wait_for_job(client, upload(client, written(rows, encoding), target).json()["id"])

    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"]) == (5_000, 0)
    assert job["encoding"] == encoding
    assert db.rows(f"SELECT id, name, city, amount::text FROM {target} ORDER BY id") == rows
    # Shift-JIS (cp932) second bytes can look like ASCII: its files go the careful way.
    assert job["rows_careful"] == (5_000 if encoding == "cp932" else 0)
    uncertain = job["encoding_confidence"] < CONFIDENT
    assert [w["code"] for w in job["warnings"]] == (["uncertain_encoding"] if uncertain else [])


def test_a_cyrillic_file_is_detected_with_confidence_and_carries_no_warning(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    target = table(DDL)
    response = upload(client, written(people("cp1251", 100), "cp1251"), target)

    assert response.json()["encoding_confidence"] >= CONFIDENT
    assert response.json()["warnings"] == []


def test_a_guess_below_the_threshold_is_a_warning_naming_the_encoding(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    """Four words of French: too little text for any detector to be sure of."""
    target = table("(id int PRIMARY KEY, name text)")
    response = upload(client, "id,name\n1,café naïve\n".encode("cp1252"), target)

    body = response.json()
    assert body["encoding_confidence"] < CONFIDENT, body
    assert [w["code"] for w in body["warnings"]] == ["uncertain_encoding"]
    assert body["encoding"] in body["warnings"][0]["message"]


@pytest.mark.parametrize(
    ("given", "written_as", "recorded"),
    [
        ("KOI8_R", "koi8-r", "koi8-r"),
        ("windows-1251", "cp1251", "cp1251"),
        ("utf-8-sig", "utf-8-sig", "utf-8"),
        ("utf-16", "utf-16", "utf-16-le"),  # the byte-order mark says which
        ("UTF-16BE", "utf-16-be", "utf-16-be"),
    ],
)
def test_any_encoding_python_knows_may_be_given(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
    given: str,
    written_as: str,
    recorded: str,
) -> None:
    target = table(DDL)
    rows = people("cp1251" if written_as == "cp1251" else "koi8-r", 10)

    response = upload(client, written(rows, written_as), target, encoding=given)
    job = wait_for_job(client, response.json()["id"])

    assert (job["status"], job["encoding"], job["encoding_confidence"]) == (
        "completed",
        recorded,
        None,
    )
    assert db.rows(f"SELECT id, name, city, amount::text FROM {target} ORDER BY id") == rows


@pytest.mark.parametrize("given", ["klingon", "rot13", "base64", "undefined"])
def test_an_encoding_python_does_not_know_is_refused_by_name(
    client: httpx.Client, table: MakeTable, given: str
) -> None:
    target = table(DDL)
    response = upload(client, b"id,name,city\n1,a,b\n", target, encoding=given)

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_option", "encoding")
    assert given in error["message"]
