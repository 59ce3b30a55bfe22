"""Serving settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from text_recognizer.images import MAX_PIXELS
from text_recognizer.serving.settings import ServingSettings


def test_defaults_and_environment() -> None:
    assert ServingSettings.from_env({}) == ServingSettings()
    assert ServingSettings().max_pixels == MAX_PIXELS
    s = ServingSettings.from_env(
        {
            "TEXT_RECOGNIZER_MODEL": "/models/a",
            "TEXT_RECOGNIZER_DB": "postgresql://u@db/x",
            "TEXT_RECOGNIZER_UI": "off",
            "TEXT_RECOGNIZER_ALLOW_PRIVATE_URLS": "1",
            "TEXT_RECOGNIZER_MAX_REQUEST_BYTES": "1000",
            "TEXT_RECOGNIZER_PREDICT_TIMEOUT_S": "2.5",
            "TEXT_RECOGNIZER_HOME": "/ignored/not/a/setting",
        }
    )
    assert s.model == Path("/models/a") and s.db == "postgresql://u@db/x"
    assert s.ui is False and s.allow_private_urls is True
    assert s.max_request_bytes == 1000 and s.predict_timeout_s == 2.5


def test_overrides_win_and_none_means_unset() -> None:
    s = ServingSettings.from_env({"TEXT_RECOGNIZER_DB": "sqlite:///a.db"}, db=None, ui=False, model=Path("m"))
    assert (s.db, s.ui, s.model) == ("sqlite:///a.db", False, Path("m"))
    with pytest.raises(TypeError, match="unknown serving setting"):
        ServingSettings.from_env({}, colour="blue")


def test_round_trip_through_the_environment() -> None:
    s = ServingSettings(model=Path("/m"), db="sqlite:///x.db", ui=False, max_queue=3, allow_private_urls=True)
    assert ServingSettings.from_env(s.to_env()) == s


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TEXT_RECOGNIZER_UI", "maybe"),
        ("TEXT_RECOGNIZER_MAX_QUEUE", "many"),
        ("TEXT_RECOGNIZER_FETCH_TIMEOUT_S", "1s"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        ServingSettings.from_env({var: value})
