"""Running ``fraudscore worker`` (or another long-running command, e.g. ``audit-sink``) as a
child process, configured through its environment.

Used by ``fraudscore demo`` and by the integration and fault tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import SecretStr

from app.settings import FraudscoreSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a child's server, or
    for a client that must find nobody there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: FraudscoreSettings) -> dict[str, str]:
    """The environment that makes a child process build exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSCORE_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            env[f"FRAUDSCORE_{name.upper()}"] = value.get_secret_value()
        elif isinstance(value, dict):  # pydantic-settings reads complex values as JSON
            env[f"FRAUDSCORE_{name.upper()}"] = json.dumps(value)
        elif value is not None:  # unset stays unset ("None" would be read as a string)
            env[f"FRAUDSCORE_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """A worker (or ``command``) subprocess with its log in a file; stopped by PID, never by
    pattern."""

    def __init__(
        self,
        settings: FraudscoreSettings,
        log_path: Path,
        args: Sequence[str] = (),
        command: str = "worker",
        *,
        program: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``program`` (e.g. a benchmark contender, another interpreter) runs instead of
        ``python -m app <command> <args>``, with ``env`` added to the settings' environment."""
        self.log_path = log_path
        self._log = log_path.open("ab")
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, our own arguments
            [sys.executable, "-m", "app", command, *args] if program is None else program,
            env=settings_env(settings) | dict(env or {}),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait (the worker checkpoints and leaves the group)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> int:
        """SIGKILL: no checkpoint, no goodbye. Returns the exit code (-9)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()
        return self.process.returncode

    @property
    def frozen(self) -> bool:
        """Whether the process is stopped (SIGSTOP), e.g. by a ``:stop`` failpoint."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def resume(self) -> None:
        """SIGCONT: wake a process frozen by a ``:stop`` failpoint."""
        self.process.send_signal(signal.SIGCONT)

    async def wait_for_log(self, text: str, timeout_s: float = 180.0) -> bool:
        """Wait until this process has logged a line containing ``text``; False on timeout
        or if the process ended first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                if text.encode() in log.read():
                    return True
            if self.process.poll() is not None:
                return False
            await asyncio.sleep(0.05)
        return False

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
