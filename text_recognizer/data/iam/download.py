"""``text-recognizer data iam``: download (sha256-checked) and safely unpack an archive, or link a copy."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from text_recognizer.data.folder import path_inside
from text_recognizer.data.iam.layout import (
    FORM_DIRS,
    SPLITS,
    IAMError,
    IAMLayout,
    find_layout,
    require_layout,
)
from text_recognizer.data.iam.splits import load_forms
from text_recognizer.paths import iam_dir

DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20

log = logging.getLogger(__name__)


def prepare_iam(source: str, sha256: str | None = None, out: Path | None = None) -> Path:
    """Make IAM usable at ``out`` (default :func:`text_recognizer.paths.iam_dir`); returns the data root.

    ``source`` is an ``http(s)://`` (or ``file://``) URL of a ``.zip``/``.tar.gz`` archive, streamed to disk,
    checked against ``sha256`` when given, and unpacked into ``out`` (no member may land outside it; run again
    with further archives to add forms); or a local directory with the official layout, which ``out`` then
    links to.

    Raises:
        IAMError: download failure, sha256 mismatch (the download is deleted), unsafe archive, or an
            incomplete layout (the message lists what is missing).
    """
    out = Path(os.path.abspath(out if out is not None else iam_dir()))
    if re.match(r"^(https?|file)://", source):
        archive = _download(source, out / "downloads", sha256)
        try:
            _extract(archive, out)
        finally:
            archive.unlink(missing_ok=True)
        root = out
    else:
        local = Path(source).expanduser()
        if not local.is_dir():
            raise IAMError(f"{source}: neither an http(s) URL nor an existing directory")
        if sha256:
            log.warning("--sha256 checks downloads only; ignored for the local directory %s", local)
        layout = find_layout(local)
        require_layout(layout)
        root = local if local.resolve() == out.resolve() else _link_layout(layout, out)
    load_forms.cache_clear()
    forms = load_forms(root)
    counts = Counter(f.split or "none" for f in forms)
    n_lines = sum(len(f.lines) for f in forms)
    print(
        f"IAM ready in {root}: {len(forms)} forms, {n_lines} lines; forms per split: "
        + ", ".join(f"{s} {counts[s]}" for s in (*SPLITS, "none") if counts[s])
    )
    return root


def _link_layout(layout: IAMLayout, out: Path) -> Path:
    """Symlink the parts of a local layout into ``out`` (xml/, form folders, task/ files)."""
    links = {out / "xml": layout.base / "xml"}
    for name in FORM_DIRS:
        if (layout.base / name).is_dir():
            links[out / name] = layout.base / name
    for name, path in layout.split_files.items():
        links[out / "task" / name] = path
    for link, target in links.items():
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise IAMError(f"{link} already exists and is not a link; remove it or choose another --out")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve())
    return out


def _download(url: str, dest_dir: Path, sha256: str | None) -> Path:
    """Stream ``url`` to ``dest_dir`` with a progress bar and check its sha256; returns the file."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "iam-archive"
    part = dest_dir / f"{name}.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, part.open("wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise IAMError(f"{url}: download failed ({e})") from e
    got = digest.hexdigest()
    if sha256 is not None and got != sha256.strip().lower():
        part.unlink()
        raise IAMError(
            f"{url}: sha256 mismatch: expected {sha256.strip()}, got {got}; the download was deleted"
        )
    if sha256 is None:
        log.warning("%s: no --sha256 given; this archive's sha256 is %s", url, got)
    path = dest_dir / name
    part.replace(path)
    return path


def _unsafe(out: Path, name: str) -> bool:
    return os.path.normpath(out / name) != str(out) and path_inside(out, name) is None


def _extract(archive: Path, out: Path) -> None:
    """Unpack a zip or tar archive into ``out``, refusing members that would land outside it or are links."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            for info in infos:
                if _unsafe(out, info.filename):
                    raise IAMError(f"{archive}: unsafe member {info.filename!r} (outside the target folder)")
            for info in tqdm(infos, desc=f"unpack {archive.name}", unit="file"):
                z.extract(info, out)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                if _unsafe(out, m.name) or not (m.isfile() or m.isdir()):
                    raise IAMError(
                        f"{archive}: unsafe member {m.name!r} (outside the target folder, or a link)"
                    )
            for m in tqdm(members, desc=f"unpack {archive.name}", unit="file"):
                t.extract(m, out, filter="data")
    else:
        raise IAMError(f"{archive}: not a zip or tar archive")
