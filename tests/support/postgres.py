"""PostgreSQL for the tests: a server per test session, and a database per test.

The session fixture ``postgres`` (``tests/conftest.py``) yields a :class:`PostgresServer`:

- with ``FRAUDSCORE_TEST_POSTGRES_URL`` set (an SQLAlchemy URL of a server's maintenance
  database, e.g. ``postgresql+psycopg2://user:password@127.0.0.1:5432/postgres``; the user
  needs CREATEDB), that server is used and nothing is started or stopped;
- otherwise a :class:`LocalPostgres` is started: ``initdb`` into a fresh temporary directory,
  ``pg_ctl -w start`` (which returns once the server accepts connections: no sleeping),
  listening on 127.0.0.1 only, on a port the kernel reports free, so that test sessions
  running side by side (several engineers on one machine) never share, or stop, each other's
  server. It is stopped and deleted at the end of the session. PostgreSQL refuses to run as
  root, so as root the server runs as the ``postgres`` user of Debian's package (installed
  by ``.ci/install``).

A missing PostgreSQL fails the tests that need it; nothing is skipped.

Per test, ``postgres.database(name)`` creates an empty database and returns its URL (the
``postgres_url`` fixture does that with a unique name and drops it afterwards). Use it for
anything that needs PostgreSQL: the registry's migrations, the Iceberg SQL catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from app.process import free_port

EXTERNAL_POSTGRES_ENV = "FRAUDSCORE_TEST_POSTGRES_URL"
USER = "fraudscore"
_TIMEOUT_S = 120


class PostgresServer:
    """A PostgreSQL server reached through ``url`` (its maintenance database)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def database(self, name: str) -> str:
        """Create the empty database ``name``; its SQLAlchemy URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bin_dir() -> Path:
    """The newest installed Debian PostgreSQL's programs."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl): run "
            f".ci/install, or set {EXTERNAL_POSTGRES_ENV} to a server's URL"
        )
    return found[-1].parent


class LocalPostgres:
    """A throwaway server in a temporary directory (see the module docstring)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fraudscore-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as, str(_bin_dir() / program), *args]
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=_TIMEOUT_S
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}".strip()
            )

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(_TIMEOUT_S), "start")  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
