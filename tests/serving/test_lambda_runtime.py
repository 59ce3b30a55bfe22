"""The handler under AWS's real runtime interface client (``awslambdaric``), against a local implementation
of the Lambda Runtime API on 127.0.0.1: what a Lambda container does, without Docker or AWS."""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from text_recognizer.paths import default_artifact

pytest.importorskip("awslambdaric")

EVENTS = Path(__file__).parent / "events"
ROOT = Path(__file__).resolve().parents[2]
API = "/2018-06-01/runtime"


class RuntimeAPI:
    """The documented endpoints: ``GET /invocation/next`` hands out queued events with the
    ``Lambda-Runtime-*`` headers; ``POST /invocation/{id}/response`` and ``/error`` collect the answers."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.answers: dict[str, tuple[str, Any]] = {}
        self.done = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self.send_error(404)
                    return
                request_id, event = api.events.get()
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:tr"
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(f"{API}/").split("/")
                kind = parts[-1]
                key = parts[1] if parts[0] == "invocation" else "init"
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with api.done:
                    api.answers[key] = (kind, json.loads(body or b"null"))
                    api.done.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def invoke(self, event: Any, timeout: float = 300) -> tuple[str, Any]:
        request_id = uuid.uuid4().hex
        self.events.put((request_id, event))
        with self.done:
            ok = self.done.wait_for(lambda: request_id in self.answers or "init" in self.answers, timeout)
        assert ok, "no answer from the runtime client"
        assert "init" not in self.answers, self.answers["init"]
        return self.answers[request_id]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeAPI]:
    api = RuntimeAPI()
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("lambda")
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server.server_address[1]}",
        "PYTHONPATH": str(ROOT),
        "TEXT_RECOGNIZER_HOME": str(home),
        "TEXT_RECOGNIZER_DB": f"sqlite:///{home / 'monitoring.db'}",
        "TEXT_RECOGNIZER_MODEL": str(default_artifact()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "text_recognizer.serving.lambda_handler.handler"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield api
    finally:
        proc.kill()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        api.server.shutdown()
        print(out[-3000:])


def recorded(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def test_http_events_under_the_runtime_client(runtime: RuntimeAPI) -> None:
    kind, answer = runtime.invoke(recorded("function_url_predict.json"))
    assert kind == "response" and answer["statusCode"] == 200, answer
    predicted = json.loads(answer["body"])
    assert isinstance(predicted["pred"], str) and len(predicted["prediction_id"]) == 32

    kind, answer = runtime.invoke(recorded("apigw_v1_predict.json"))
    assert kind == "response" and answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["model_version"] == predicted["model_version"]

    kind, answer = runtime.invoke(recorded("apigw_v2_health.json"))
    assert (kind, answer["statusCode"], json.loads(answer["body"])["status"]) == ("response", 200, "ok")

    kind, answer = runtime.invoke({**recorded("apigw_v1_predict.json"), "path": "/admin"})
    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (404, "not_found")


def test_direct_invokes_under_the_runtime_client(runtime: RuntimeAPI) -> None:
    evt = recorded("function_url_predict.json")
    body = base64.b64decode(evt["body"]).decode() if evt.get("isBase64Encoded") else evt["body"]
    image = json.loads(body)["image"]
    kind, answer = runtime.invoke({"image": image})
    assert kind == "response" and isinstance(answer.get("pred"), str) and "statusCode" not in answer, answer
    assert {"confidence", "lines", "model_version", "prediction_id"} <= answer.keys()

    kind, answer = runtime.invoke({"image_url": "http://169.254.169.254/latest/meta-data/"})
    assert kind == "response"
    assert (answer["statusCode"], answer["error"]["code"]) == (403, "forbidden_url")
