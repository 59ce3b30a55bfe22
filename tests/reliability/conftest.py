"""Reliability fixtures: the real app over the tiny staged artifact, with its lifespan started."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from text_recognizer.serving.api import create_app
from text_recognizer.serving.settings import ServingSettings

#: every name resolves here: TEST-NET-1, a documentation range the URL check refuses, so fuzzed image_url
#: values exercise parsing and checking without touching the network
FUZZ_ADDRESS = "192.0.2.1"


def _fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FUZZ_ADDRESS, port or 80))]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> Iterator[FastAPI]:
    """The real app (real predictor, SQLite store) with its lifespan started and name lookups faked."""
    db = tmp_path_factory.mktemp("fuzz") / "monitoring.db"
    app = create_app(
        ServingSettings(model=tiny_artifact, db=f"sqlite:///{db}", ui=False, fetch_timeout_s=1.0)
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("text_recognizer.serving.fetch.socket.getaddrinfo", _fake_getaddrinfo)
        with TestClient(app, raise_server_exceptions=False):
            yield app


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app: FastAPI) -> TestClient:
    return TestClient(fuzz_app, raise_server_exceptions=False)
