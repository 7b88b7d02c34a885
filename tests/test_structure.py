"""The layout keeps one home per fact: every statement on the job tables is in server/jobs/.

A module elsewhere in server/ that names a job table (in SQL text, or by importing the
table definitions) fails this test: it must ask the job repository instead. A table of its
own may still point at a job with a foreign key: that is the schema, not a statement.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import server
from tests.harness import ROOT

SERVER = ROOT / "server"
HOMES = (SERVER / "jobs", SERVER / "migrations")
JOB_TABLES = re.compile(r"\b(import_jobs|import_segments|refused_rows)\b")
TABLE_MODULE = re.compile(
    r"^\s*(from\s+server\.jobs(\.tables\s+import|\s+import\s+.*\btables\b))", re.MULTILINE
)


FOREIGN_KEY = re.compile(r"ForeignKey\(\s*\"(import_jobs|import_segments|refused_rows)\.\w+\"")


def offences(source: str) -> list[str]:
    """What in this source speaks to a job table directly: names and SQL strings, not
    comments, nor a foreign key of another table."""
    source = FOREIGN_KEY.sub("ForeignKey(None", source)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT and JOB_TABLES.search(token.string):
            found.append(f"line {token.start[0]}: {token.string.strip()[:80]}")
    found += [f"imports the job tables: {m.group(1)}" for m in TABLE_MODULE.finditer(source)]
    return found


def outside_homes() -> list[Path]:
    return [
        path
        for path in sorted(SERVER.rglob("*.py"))
        if not any(path.is_relative_to(home) for home in HOMES)
    ]


def test_no_module_outside_the_job_repository_speaks_sql_to_the_job_tables() -> None:
    found = {
        str(path.relative_to(ROOT)): problems
        for path in outside_homes()
        if (problems := offences(path.read_text()))
    }
    assert found == {}, "ask server/jobs/repository.py instead"


def test_the_check_sees_sql_and_table_imports_but_not_comments() -> None:
    assert offences('q = text("UPDATE import_jobs SET status = :s")\n')
    assert offences("rows = select(refused_rows)\n")
    assert offences('cursor.execute(f"DELETE FROM {schema}.import_segments")\n')
    assert offences("from server.jobs.tables import import_jobs\n")
    assert offences("from server.jobs import tables\n")
    assert not offences("# import_jobs is the repository's\nx = 1\n")
    assert not offences('Column("job_id", UUID, ForeignKey("import_jobs.id"))\n')
    assert offences('Column("x", Text, server_default=text("(SELECT 1 FROM import_jobs)"))\n')
    assert not offences('name = "csv_import_jobs_total"\n')


def server_entries() -> set[str]:
    """The packages and modules directly under server/."""
    return {
        path.name
        for path in SERVER.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    } | {"web", "migrations"}


def test_the_layout_map_in_the_package_docstring_names_every_part_of_the_server() -> None:
    text = server.__doc__ or ""
    named = {name for name in server_entries() if re.search(rf"\b{re.escape(name)}\b/?", text)}
    assert named == server_entries()


def test_the_readme_layout_names_every_part_of_the_server_and_nothing_gone() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout") :]
    block = section[section.index("```") + 3 :]
    block = block[: block.index("```")]
    named = set(re.findall(r"server/([\w.]+)", block))
    assert named == server_entries()
    for script in re.findall(r"\b([\w]+\.py)\b", block):
        assert any(ROOT.glob(f"*/{script}")), f"{script} is in the README but not in the tree"
