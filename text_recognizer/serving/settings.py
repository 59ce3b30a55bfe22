"""Serving configuration: one typed dataclass, its defaults here only, overridable by environment variables.

Every field ``name`` can be set by ``TEXT_RECOGNIZER_<NAME>`` (for example ``TEXT_RECOGNIZER_DB``,
``TEXT_RECOGNIZER_ALLOW_PRIVATE_URLS=1``). The environment is how settings reach uvicorn worker processes and
the Lambda container.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text_recognizer.images import MAX_PIXELS

ENV_PREFIX = "TEXT_RECOGNIZER_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ServingSettings:
    """What the API, the Lambda handler and the mounted web page need.

    Attributes:
        model: staged artifact folder; None means :func:`text_recognizer.paths.default_artifact`.
        db: SQLAlchemy URL of the monitoring store; None: SQLite at ``<TEXT_RECOGNIZER_HOME>/monitoring.db``.
        ui: mount the Gradio page at ``/``.
        max_request_bytes: largest HTTP request body accepted (base64 adds a third to the image size).
        max_image_bytes: largest image file accepted, decoded or downloaded.
        body_timeout_s: longest a request body may take to arrive after its head (past it: ``408``); bounds
            how long a client that trickles its body holds one of the predict slots.
        max_pixels: largest image (width x height) accepted, checked from the header before decoding.
        predict_timeout_s: the per-request deadline of a prediction (waiting for a free worker included):
            past it the request gets ``503 prediction_timeout`` and, with ``predict_in_processes``, the work
            is stopped (its worker process killed and replaced).
        predict_in_processes: run predictions in ``max_concurrency`` worker processes, each with its own copy
            of the model, so a prediction past its deadline can be killed. Off: threads of the server
            process sharing one model (less memory, but a timed-out prediction runs on to its end). The
            Lambda handler always predicts in-process: Lambda's own timeout stops the container.
        max_concurrency: predictions run at the same time in one process (worker processes, or threads).
        max_queue: predictions allowed to wait for a free thread; more get ``503 overloaded`` at once.
        allow_private_urls: let ``image_url`` reach private and loopback addresses (tests, trusted networks).
            Link-local (cloud metadata), multicast, reserved and unspecified addresses are always refused.
        fetch_timeout_s: total time allowed for downloading an ``image_url``.
        max_redirects: redirects followed by a download, each one checked like the first URL.
        db_auto_upgrade: apply pending schema migrations on start to a server database (PostgreSQL...);
            SQLite files and empty databases are always brought to the latest schema.
        db_pool_size: connections a server process keeps open to a server database (as many more may
            open under bursts); a Lambda container keeps one.
        db_connect_timeout_s: longest wait for a database connection (connecting, or a free pool slot).
        db_statement_timeout_s: longest a PostgreSQL statement may run before the server cancels it.
        api_key: when set, ``/predict*`` and ``/feedback`` need it (``Authorization: Bearer <key>`` or
            ``X-API-Key``) and the page asks for it at a login form. Off by default; set it on any public
            deployment.
        retention_days: delete predictions, their feedback and images older than this many days from the
            store, and older files from the page's upload cache, at start and hourly; None: keep everything.
        secret: key of the feedback tokens (HMAC); None: a random one kept beside the database.
    """

    model: Path | None = None
    db: str | None = None
    ui: bool = True
    max_request_bytes: int = 16 * 2**20
    max_image_bytes: int = 10 * 2**20
    body_timeout_s: float = 30.0
    max_pixels: int = MAX_PIXELS
    predict_timeout_s: float = 10.0
    predict_in_processes: bool = True
    max_concurrency: int = 2
    max_queue: int = 32
    allow_private_urls: bool = False
    fetch_timeout_s: float = 10.0
    max_redirects: int = 3
    db_auto_upgrade: bool = False
    db_pool_size: int = 5
    db_connect_timeout_s: float = 5.0
    db_statement_timeout_s: float = 15.0
    api_key: str | None = None
    retention_days: float | None = None
    secret: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServingSettings:
        """Defaults, then ``TEXT_RECOGNIZER_*`` variables, then ``overrides`` whose value is not None.

        Raises:
            ValueError: a variable that does not parse as its field's type, naming the variable.
        """
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if var in env and env[var] != "":
                values[f.name] = _parse(var, env[var], hints[f.name])
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown serving setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` rebuild these settings in another process."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[ENV_PREFIX + f.name.upper()] = (
                    ("1" if value else "0") if isinstance(value, bool) else str(value)
                )
        return out


def _parse(var: str, raw: str, hint: Any) -> Any:
    """Parse one variable's text as ``hint`` (bool, int, float, str, Path, or ``X | None``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if args else hint
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{var}={raw!r}: expected one of {sorted(_TRUE | _FALSE)}")
    try:
        return kind(text)
    except ValueError as e:
        raise ValueError(f"{var}={raw!r}: expected {kind.__name__} ({e})") from e
