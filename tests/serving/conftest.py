"""Serving fixtures: the real predictor over the tiny staged artifact, the store, started API clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from text_recognizer.serving.api import create_app
from text_recognizer.serving.core import PredictorLike, RecognitionService
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store


@pytest.fixture(scope="session")
def real_predictor(tiny_artifact: Path) -> PredictorLike:
    from text_recognizer.inference.predictor import load_predictor

    return load_predictor(tiny_artifact)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitoring.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The store's URL on each backend: a SQLite file, and a new database on the session's PostgreSQL."""
    return db_url if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(db_url: str) -> ServingSettings:
    return ServingSettings(db=db_url, ui=False)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """``make_client(settings, predictor)`` -> a started TestClient (lifespan run), closed after the test."""
    clients: list[TestClient] = []

    def make(settings: ServingSettings, predictor: PredictorLike) -> TestClient:
        app: FastAPI = create_app(settings, predictor)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(
    make_client: Callable[..., TestClient], settings: ServingSettings, real_predictor: PredictorLike
) -> TestClient:
    return make_client(settings, real_predictor)


@pytest.fixture
def make_service(db_url: str) -> Iterator[Callable[..., RecognitionService]]:
    services: list[RecognitionService] = []

    def make(predictor: PredictorLike, **overrides: Any) -> RecognitionService:
        settings = ServingSettings(db=db_url, ui=False, **overrides)
        service = RecognitionService(predictor, Store(settings.db), settings)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
