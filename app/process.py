"""Running ``fraudscore worker`` as a child process, configured through its environment.

Used by ``fraudscore demo`` and by the integration and fault tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from app.settings import FraudscoreSettings


def settings_env(settings: FraudscoreSettings) -> dict[str, str]:
    """The environment that makes a child process build exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSCORE_")}
    for name in type(settings).model_fields:
        env[f"FRAUDSCORE_{name.upper()}"] = str(getattr(settings, name))
    return env


class WorkerProcess:
    """A worker subprocess with its log in a file; stopped by PID, never by pattern."""

    def __init__(self, settings: FraudscoreSettings, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=settings_env(settings),
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

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
