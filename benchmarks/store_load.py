"""Two ``text-recognizer serve`` processes sharing one PostgreSQL under concurrent clients, then ``kill -9``.

    python -m benchmarks.store_load [--db postgresql+psycopg://...] [--clients 32] [--duration 30]

Without ``--db`` a throwaway PostgreSQL cluster is started (Debian's ``postgresql`` package; see
``tests/postgres_helpers.py``). Each client predicts on one server and flags the prediction on the other
(three flags a prediction). Phase 1 runs ``--duration`` seconds with both servers; then server A is killed
with SIGKILL while the clients are writing, and the clients of B go on for 2 s. Afterwards every
acknowledged prediction and flag is looked up in the database. Prints requests/s, statuses and lost writes;
exits 1 if any acknowledged write is lost.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from postgres_helpers import start_cluster  # noqa: E402
from reliability_helpers import (  # noqa: E402
    Acknowledged,
    lost_writes,
    start_server,
    stop_server,
    write_until_stopped,
)


def run(db: str, model: Path, clients: int, duration: float, workdir: Path) -> bool:
    a = start_server(model, db, workdir)
    b = start_server(model, db, workdir)
    acked, stop = Acknowledged(), threading.Event()
    pairs = [(a.url, b.url) if k % 2 else (b.url, a.url) for k in range(clients)]
    threads = [
        threading.Thread(target=write_until_stopped, args=(p, k, acked, stop, f), daemon=True)
        for k, (p, f) in enumerate(pairs)
    ]
    try:
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(duration)
        with acked.lock:
            before_kill = (len(acked.predictions), len(acked.feedback))
        elapsed = time.monotonic() - started
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=30)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop_server(a)
        stop_server(b)
    missing, lost = lost_writes(db, acked)
    writes = before_kill[0] + before_kill[1]
    print(f"{clients} clients, {elapsed:.1f} s, two servers on one PostgreSQL (model {model.name})")
    print(
        f"  before kill -9: {before_kill[0]} predictions + {before_kill[1]} flags acknowledged "
        f"= {writes / elapsed:.1f} acknowledged writes/s"
    )
    print(f"  in all (after kill -9 of A): {len(acked.predictions)} predictions, {len(acked.feedback)} flags")
    print(f"  lost: {len(missing)} acknowledged predictions, {len(lost)} acknowledged flags")
    return not missing and not lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a PostgreSQL URL; default: a throwaway cluster")
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "line-default")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    cluster = None if args.db else start_cluster()
    try:
        db = args.db or (cluster.create_database() if cluster else "")
        with tempfile.TemporaryDirectory() as workdir:
            ok = run(db, args.model, args.clients, args.duration, Path(workdir))
    finally:
        if cluster is not None:
            cluster.remove()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
