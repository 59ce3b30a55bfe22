"""A throwaway PostgreSQL server for tests and benchmarks (importable as ``postgres_helpers``).

Debian's ``postgresql`` package (binaries in ``/usr/lib/postgresql/<version>/bin``); a cluster made by
``initdb`` in a temporary folder, started as an unprivileged user (PostgreSQL refuses to run as root: under
root, ``nobody`` via ``runuser``), listening on 127.0.0.1 and a free port only, removed when stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

UNPRIVILEGED_USER = "nobody"


def postgres_bin() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with initdb, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """One running cluster; ``url(db)`` is a SQLAlchemy URL (psycopg 3) of database ``db`` on it."""

    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", UNPRIVILEGED_USER, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        log = self.root / "server.log"
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(log), "-w",
                           "-t", "60", "start", check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log.read_text()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return (
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0
        )

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        from sqlalchemy import create_engine, text

        name = f"t_{uuid.uuid4().hex[:12]}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def remove(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> PostgresCluster:
    """initdb + start a new cluster; raises RuntimeError (with the reason) when that is not possible."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise RuntimeError("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    root = Path(tempfile.mkdtemp(prefix="text-recognizer-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, UNPRIVILEGED_USER)
    cluster = PostgresCluster(bin_dir, root, _free_port())
    try:
        cluster._run(str(bin_dir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--no-sync")  # fmt: skip
        cluster.start()
    except (subprocess.CalledProcessError, RuntimeError) as e:
        cluster.remove()
        detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else str(e)
        raise RuntimeError(f"could not start a PostgreSQL cluster: {detail}") from e
    return cluster
