"""Shared fixtures: the real configs, shrunk (tiny dims, CPU), and a tiny staged artifact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_helpers import save_untrained_checkpoint
from postgres_helpers import PostgresCluster, start_cluster


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """A staged artifact (ONNX + manifest + a small language model) of an untrained tiny model: real files,
    real loading code."""
    from text_recognizer.staging.assemble import stage_model
    from text_recognizer.staging.confidence import CalibrationConfig
    from text_recognizer.staging.lm import LMConfig

    lm = LMConfig(order=4, max_chars=200_000, grid=((0.5, 1.0), (1.0, 2.0)))
    out = tmp_path_factory.mktemp("artifacts") / "tiny"
    return stage_model(
        str(tiny_checkpoint), out, lm_cfg=lm, calibration=CalibrationConfig(lines=16, blanks=8)
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for the session (skipped only where it cannot be installed/started)."""
    try:
        cluster = start_cluster()
    except RuntimeError as e:
        pytest.skip(f"no PostgreSQL server for the tests: {e}")
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A new empty database on the session's PostgreSQL server."""
    if not postgres.running():
        postgres.start()
    return postgres.create_database()
