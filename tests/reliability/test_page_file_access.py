"""The web page serves no file outside its upload cache and never reads a server path a client names."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from text_recognizer.serving.api import create_app
from text_recognizer.serving.errors import ServingError
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.ui import read_upload, upload_folder

from reliability_helpers import text_line_png

SECRET = b"server-secret-7f3a"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> Iterator[tuple[TestClient, Path]]:
    """The app with the page mounted; yields a client and the SQLite database file."""
    db = tmp_path_factory.mktemp("page") / "monitoring.db"
    app = create_app(ServingSettings(model=tiny_artifact, db=f"sqlite:///{db}", ui=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, db


def call_predict(client: TestClient, path: str) -> tuple[str, Any]:
    """``POST /gradio_api/call/predict`` with a file given by server path; returns (SSE event, its data)."""
    posted = client.post(
        "/gradio_api/call/predict", json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
    )
    assert posted.status_code == 200, posted.text
    stream = client.get(f"/gradio_api/call/predict/{posted.json()['event_id']}").text
    events = re.findall(r"event: (\w+)\ndata: (.*)", stream)
    assert events, stream
    event, data = events[-1]
    return event, json.loads(data)


def cached_files() -> list[Path]:
    return [p for p in upload_folder().rglob("*") if p.is_file()] if upload_folder().exists() else []


def test_a_named_server_path_is_never_read_copied_or_served(
    page: tuple[TestClient, Path], tmp_path: Path
) -> None:
    client, db = page
    client.post("/predict", json={"image": base64.b64encode(text_line_png()).decode()})
    assert db.stat().st_size > 0
    outside = tmp_path / "secret.png"  # in the system temp dir, outside the upload cache
    outside.write_bytes(SECRET)
    cwd_file = Path.cwd() / "pyproject.toml"
    before = set(cached_files())
    for target in ["/etc/hostname", str(db), str(outside), str(cwd_file), "/etc/../etc/hostname"]:
        event, data = call_predict(client, target)
        assert event == "error", (target, data)
        assert "/" not in json.dumps(data), data  # the error names no server path (nor the copy)
        served = client.get(f"/gradio_api/file={target}")
        assert served.status_code == 403, (target, served.status_code)
    for copy in set(cached_files()) - before:  # nothing was copied into the cache either
        body = copy.read_bytes()
        assert SECRET not in body and not body.startswith(b"SQLite format 3"), copy
        assert body != Path("/etc/hostname").read_bytes(), copy


def test_paths_that_escape_the_cache_are_refused(page: tuple[TestClient, Path]) -> None:
    client, _ = page
    cache = upload_folder()
    for target in [f"{cache}/../../etc/hostname", f"{cache}/%2e%2e/%2e%2e/etc/hostname"]:
        assert client.get(f"/gradio_api/file={target}").status_code in (403, 404), target


def test_an_uploaded_file_is_read(page: tuple[TestClient, Path]) -> None:
    client, _ = page
    uploaded = client.post("/gradio_api/upload", files={"files": ("line.png", text_line_png(), "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    event, data = call_predict(client, uploaded.json()[0])
    assert event == "complete", data
    assert "Confidence" in data[1], data


def test_read_upload_refuses_links_out_of_the_cache(tmp_path: Path) -> None:
    cache = upload_folder()
    cache.mkdir(parents=True, exist_ok=True)
    link = cache / f"link-{tmp_path.name}.png"
    link.symlink_to("/etc/hostname")
    try:
        with pytest.raises(ServingError) as err:
            read_upload(str(link))
        assert "/" not in err.value.message
        with pytest.raises(ServingError):
            read_upload("/etc/hostname")
    finally:
        link.unlink()


def test_config_names_no_server_path_outside_the_cache(page: tuple[TestClient, Path]) -> None:
    client, _ = page
    config = client.get("/config").text
    cache = str(upload_folder())
    for path in re.findall(r'"(/[^"]+)"', config):
        assert path.startswith(cache) or not Path(path).is_absolute() or not Path(path).exists(), path
    for private in [str(Path.home()), str(Path.cwd()), "site-packages"]:
        assert private not in config.replace(cache, ""), private
