"""One OCR system in a fresh process: read labels.jsonl folders, or time a cold start; write JSON.

    python benchmarks/reader_worker.py --system ours --model DIR --set NAME:KIND:DIR ... --out FILE.json
    python benchmarks/reader_worker.py --system rapidocr --cold IMAGE --kind paragraph --out FILE.json

``benchmarks/run_all.py`` runs it with the Python that has the system installed: the project's for ours and
Tesseract, the benchmark venv (``.cache/bench-venv``) for RapidOCR. So it imports only the standard library at
the top, and numpy and Pillow (which every system here depends on) when it reads images.

Every system gets the same decoded grayscale image ``uint8 [H, W]`` in memory and is timed from there. The
peers get it as dark ink on light paper, the polarity they are made for, and a line image cropped to its ink
(:func:`peer_view`); ours gets it as it is, since it normalises polarity and crops by itself. Network access
is refused in this process, so a system that would download models at run time fails here instead of
measuring the download.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # a cold start is timed from here: before any import below

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

PSM = {"line": "7", "paragraph": "6"}  # Tesseract page segmentation: one text line / one block of text


class Reader(Protocol):
    version: str
    #: True when the work runs in child processes (peak memory is then that of the children)
    external: bool

    def read(self, gray: Any, kind: str) -> str:
        """``gray``: uint8 ``[H, W]``; ``kind``: line or paragraph -> the text, lines joined by ``\\n``."""
        ...


class OursReader:
    external = False

    def __init__(self, model: str | None) -> None:
        from text_recognizer import __version__
        from text_recognizer.inference.predictor import load_predictor

        self.predictor = load_predictor(Path(model) if model else None)
        self.version = f"{__version__} ({self.predictor.model_version})"

    def read(self, gray: Any, kind: str) -> str:
        return self.predictor.predict(gray).text


class TesseractReader:
    """The ``tesseract`` binary, one process per image (as its command line is used)."""

    external = True

    def __init__(self) -> None:
        out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=True)
        self.version = (out.stdout or out.stderr).split("\n", 1)[0].strip()

    def read(self, gray: Any, kind: str) -> str:
        page = peer_view(gray, kind)
        h, w = page.shape
        out = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", "eng", "--psm", PSM[kind]],
            input=b"P5\n%d %d\n255\n" % (w, h) + page.tobytes(),  # binary PGM
            capture_output=True,
            check=True,
        )
        return out.stdout.decode("utf-8", "replace").replace("\f", "")


class RapidOCRReader:
    """RapidOCR with its default models (shipped in the wheel).

    A paragraph goes through its whole pipeline (detection, orientation, recognition); a line image goes to
    the recogniser alone, as RapidOCR reads text crops (its detector upscales a short line image about
    sevenfold, which is slow and reads worse).
    """

    external = False

    def __init__(self) -> None:
        from importlib.metadata import version

        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "critical"})
        self.version = f"rapidocr {version('rapidocr')}, onnxruntime {version('onnxruntime')}"

    def read(self, gray: Any, kind: str) -> str:
        import numpy as np

        page = peer_view(gray, kind)
        if kind == "line":
            return " ".join(self.engine(page, use_det=False, use_cls=False, use_rec=True).txts or ())
        result = self.engine(page, use_det=True, use_cls=True, use_rec=True)
        if not result.txts:
            return ""
        boxes = [(float(b[:, 1].mean()), float(np.ptp(b[:, 1])), float(b[:, 0].min())) for b in result.boxes]
        return group_lines(boxes, list(result.txts))


def group_lines(boxes: list[tuple[float, float, float]], texts: list[str]) -> str:
    """Detected words or phrases -> lines of text.

    ``boxes``: ``(y_center, height, x_left)`` per text. A box whose centre lies within half the median box
    height of the previous one's joins its line; lines are read top to bottom, boxes left to right.
    """
    order = sorted(range(len(texts)), key=lambda i: boxes[i][0])
    heights = sorted(b[1] for b in boxes)
    tolerance = 0.5 * heights[len(heights) // 2]
    lines: list[list[int]] = []
    for i in order:
        if lines and abs(boxes[i][0] - boxes[lines[-1][-1]][0]) <= tolerance:
            lines[-1].append(i)
        else:
            lines.append([i])
    return "\n".join(" ".join(texts[i] for i in sorted(line, key=lambda i: boxes[i][2])) for line in lines)


def peer_view(gray: Any, kind: str) -> Any:
    """What a peer is given: dark ink on light paper; a line image also cropped to its ink, 6 px margin.

    Ink is any pixel 60 levels darker than the median (the paper); an ink row needs 3 such pixels, a column 2.
    """
    import numpy as np

    page = 255 - gray if np.median(gray) < 128 else gray
    if kind != "line":
        return np.ascontiguousarray(page)
    mask = page < np.median(page) - 60
    rows, cols = np.flatnonzero(mask.sum(axis=1) > 2), np.flatnonzero(mask.sum(axis=0) > 1)
    if not rows.size or not cols.size:
        return np.ascontiguousarray(page)
    m = 6
    return np.ascontiguousarray(
        page[max(rows[0] - m, 0) : rows[-1] + m + 1, max(cols[0] - m, 0) : cols[-1] + m + 1]
    )


def load_image(path: Path) -> Any:
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("L"))


def make_reader(system: str, model: str | None) -> Reader:
    if system == "ours":
        return OursReader(model)
    if system == "tesseract":
        return TesseractReader()
    if system == "rapidocr":
        return RapidOCRReader()
    raise ValueError(f"unknown system {system!r}: expected ours, tesseract or rapidocr")


def peak_rss_mb(reader: Reader) -> float:
    """Peak resident memory (MiB) of this process, or of its largest child when the reader runs children."""
    who = resource.RUSAGE_CHILDREN if reader.external else resource.RUSAGE_SELF
    kib = resource.getrusage(who).ru_maxrss
    return kib / (2**20 if sys.platform == "darwin" else 2**10)


def read_sets(reader: Reader, sets: list[str]) -> dict[str, Any]:
    """``NAME:KIND:DIR`` labels.jsonl folders -> per image: truth, text, seconds (after an untimed warm-up
    read of each folder's first image)."""
    from tqdm import tqdm

    out: dict[str, Any] = {}
    for spec in sets:
        name, kind, folder = spec.split(":", 2)
        entries = [
            json.loads(x) for x in (Path(folder) / "labels.jsonl").read_text().splitlines() if x.strip()
        ]
        reader.read(load_image(Path(folder) / entries[0]["image"]), kind)
        items = []
        for entry in tqdm(entries, desc=name, unit="img", file=sys.stderr, leave=False):
            gray = load_image(Path(folder) / entry["image"])
            t = time.perf_counter()
            text = reader.read(gray, kind)
            items.append(
                {
                    "image": entry["image"],
                    "truth": entry["text"],
                    "text": text,
                    "seconds": time.perf_counter() - t,
                }
            )
        out[name] = {"kind": kind, "items": items}
    return out


def forbid_network() -> None:
    """Make any outgoing connection (other than a Unix socket) fail loudly."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return original(self, address)
        raise RuntimeError(f"network access attempted during the benchmark: {address!r}")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", required=True, choices=["ours", "tesseract", "rapidocr"])
    parser.add_argument("--model", help="our artifact folder (default: the shipped model)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="NAME:KIND:DIR, repeatable")
    parser.add_argument("--cold", help="time import + load + the first read of this image, then exit")
    parser.add_argument("--kind", default="paragraph", choices=sorted(PSM), help="kind of the --cold image")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    forbid_network()
    system, model, out = str(args.system), args.model, Path(args.out)
    reader = make_reader(system, model)
    if args.cold:
        loaded = time.perf_counter()
        reader.read(load_image(Path(args.cold)), str(args.kind))
        done = time.perf_counter()
        result: dict[str, Any] = {
            "load_s": loaded - STARTED,
            "first_s": done - loaded,
            "cold_s": done - STARTED,
        }
    else:
        result = {"sets": read_sets(reader, list(args.sets))}
    result.update(system=system, version=reader.version, peak_rss_mb=peak_rss_mb(reader))
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
