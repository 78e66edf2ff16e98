"""A throwaway PostgreSQL server for the audit catalog tests, started and stopped by the test
session like the Kafka broker: ``initdb`` into a temporary directory, ``pg_ctl -w`` (which
waits until the server accepts connections), one database per test.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user that
Debian's package creates.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

USER = "fraudscore"


def _bin_dir() -> Path:
    """The newest Debian PostgreSQL's programs (``.ci/install`` installs the package)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run .ci/install")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fraudscore-postgres-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(_bin_dir() / program), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL."""
        server = f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}"
        engine = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return f"{server}/{name}"
