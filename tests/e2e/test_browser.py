"""End to end in a real browser: Debian's chromium, driven by Playwright, against the real commands.

Upload an image on the page, see its text, flag it with a correction, then find the row in the database; once
with the page mounted in the API process (`text-recognizer serve`), once standalone (`text-recognizer ui`)
against that API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import create_engine, text

CHROMIUM = Path(os.environ.get("TEXT_RECOGNIZER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CORRECTION = "the quick brown fox"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: run `make e2e-setup` (apt chromium)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def command(args: list[str], ready_url: str, log: Path) -> Iterator[None]:
    """Run ``text-recognizer ARGS`` until the test ends; wait until ``ready_url`` answers 200."""
    cli = shutil.which("text-recognizer", path=str(Path(sys.executable).parent)) or "text-recognizer"
    env = {
        **os.environ,
        "TEXT_RECOGNIZER_HOME": str(log.parent / "home"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    with log.open("w") as out:
        proc = subprocess.Popen([cli, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"`text-recognizer {args[0]}` exited ({proc.returncode}):\n{log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"`text-recognizer {args[0]}` did not start:\n{log.read_text()}")
                time.sleep(0.3)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def api(tiny_artifact: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``text-recognizer serve`` (API + page); yields ``(base URL, database URL)``."""
    port, db = free_port(), f"sqlite:///{tmp_path / 'monitoring.db'}"
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(tiny_artifact), "--db", db]
    with command(args, f"{url}/health", tmp_path / "serve.log"):
        yield url, db


def note_image(path: Path) -> Path:
    img = Image.new("L", (360, 64), "white")
    ImageDraw.Draw(img).text((10, 24), "the quick brown fox", fill="black")
    img.save(path)
    return path


def upload_and_flag(page_url: str, image: Path) -> str:
    """Drive the page in chromium; returns the text it showed."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install playwright (see `make e2e-setup`)")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_url, wait_until="domcontentloaded")
            page.locator("#input-image input[type=file]").set_input_files(str(image))
            expect(page.locator("#pred-info")).to_contain_text("Confidence", timeout=30_000)
            shown = page.locator("#pred-text textarea").input_value()
            correction = page.locator("#correct-text textarea")
            expect(correction).to_have_value(shown)
            correction.fill(CORRECTION)
            page.locator("#flag-button").click()
            expect(page.locator("#flag-status")).to_contain_text("Saved as feedback", timeout=15_000)
            return shown
        finally:
            browser.close()


def flagged_rows(db: str) -> list[tuple[object, ...]]:
    with create_engine(db).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.source, p.text, p.image_sha256, f.corrected_text, f.reason "
                "FROM feedback f JOIN predictions p ON p.id = f.prediction_id"
            )
        ).all()
    return [tuple(r) for r in rows]


def test_page_in_the_api_process(api: tuple[str, str], tmp_path: Path) -> None:
    url, db = api
    image = note_image(tmp_path / "note.png")
    expected = httpx.post(f"{url}/predict/upload", files={"file": image.read_bytes()}, timeout=30).json()[
        "pred"
    ]
    assert upload_and_flag(url, image) == expected
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    assert flagged_rows(db) == [("ui", expected, sha, CORRECTION, "wrong_text")]


def test_standalone_page_against_the_api(api: tuple[str, str], tmp_path: Path) -> None:
    url, db = api
    image = note_image(tmp_path / "note.png")
    port = free_port()
    page_url = f"http://127.0.0.1:{port}/"
    with command(["ui", "--api-url", url, "--port", str(port)], page_url, tmp_path / "ui.log"):
        shown = upload_and_flag(page_url, image)
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    assert flagged_rows(db) == [("upload", shown, sha, CORRECTION, "wrong_text")]  # it came in over HTTP
