"""An S3-compatible object store for the tests: moto's HTTP server, as its own process.

``moto_server`` (PyPI ``moto[s3]``, a dev dependency) serves the S3 REST API over HTTP on
127.0.0.1 and a port the kernel reports free; our code reaches it through pyiceberg's
PyArrow FileIO (the AWS SDK for C++ inside pyarrow), exactly as it would reach MinIO or AWS S3
through ``FRAUDSCORE_AUDIT_S3_*``. Nothing is mocked in-process. It keeps objects in memory
and accepts any credentials, so the tests check wiring and the S3 code path, not
authorization. The server is started once per test session and stopped by its PID.
"""

from __future__ import annotations

import http.client
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyarrow.fs import S3FileSystem

from app.process import free_port

_READY_TIMEOUT_S = 60.0
ACCESS_KEY_ID = "fraudscore-test"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    secret_access_key: str

    def create_bucket(self, name: str) -> None:
        self.filesystem(allow_bucket_creation=True).create_dir(name)

    def filesystem(self, *, allow_bucket_creation: bool = False) -> S3FileSystem:
        return S3FileSystem(
            endpoint_override=self.endpoint,
            access_key=ACCESS_KEY_ID,
            secret_key=self.secret_access_key,
            region=REGION,
            allow_bucket_creation=allow_bucket_creation,
        )


class MotoServer:
    """``moto_server`` as a child process of the test session."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        program = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if program is None:
            raise RuntimeError("moto_server is not installed: run .ci/install (dev extra)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [program, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_it_answers()
        return S3Server(f"http://127.0.0.1:{self.port}", secrets.token_hex(16))

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self.log_path.read_text()[-2000:]}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)  # polling for readiness, with a deadline
            finally:
                connection.close()
        raise RuntimeError(f"moto_server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
