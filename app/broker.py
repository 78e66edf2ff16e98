"""The project's local single-node Apache Kafka broker (KRaft), for development and tests.

:class:`LocalBroker` fetches the broker's jars from Maven Central once into a cache shared by
all checkouts, writes its configuration under ``var/kafka``, starts it detached in its own
session, waits until it really answers Kafka requests, and stops exactly the process it started
(found through a PID file and checked against ``/proc`` before any signal).

Optionally (:class:`SecuredListeners`, for testing the clients' TLS and SASL) the broker also
listens with SASL_SSL (SCRAM-SHA-512 and PLAIN) on port + 2 and with mutual TLS on port + 3;
the plaintext listener stays for the readiness probe and between broker and controller.

Also here, pure and unit-tested: parsing the bootstrap address, rendering ``server.properties``
and a raw-socket Kafka Metadata probe used as the readiness check. No CLI code lives here.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.errors import BrokerError, MissingToolError
from app.settings import FraudscoreSettings

SLF4J_BINDING = "org.slf4j:slf4j-reload4j:1.7.36"
STARTED_LINE = "Kafka Server started"
INSTALL_HINT = "install them, e.g. `apt-get install openjdk-17-jre-headless maven`"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
BIND_HOST = "127.0.0.1"
LOG_TAIL_LINES = 30
MVN_TIMEOUT_S = 900.0
LOG_ROTATE_BYTES = 50 * 1024 * 1024

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fraudscore.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{slf4j_group}</groupId>
      <artifactId>{slf4j_artifact}</artifactId>
      <version>{slf4j_version}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
"""

# Children spawned by this process: the only PIDs we may reap with waitpid().
_CHILDREN: set[int] = set()


@dataclass(frozen=True)
class BrokerStatus:
    """What ``fraudscore kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path
    data_dir: Path
    version: str


@dataclass(frozen=True)
class SecuredListeners:
    """TLS material and SASL users of a local broker's secured listeners (PEM files).

    ``keystore``: the broker's unencrypted private key followed by its certificate (for
    127.0.0.1); ``truststore``: the CA certificate that signed it and the clients' certificates.
    ``users``: names and passwords, as SCRAM-SHA-512 credentials and PLAIN users.
    """

    keystore: Path
    truststore: Path
    users: Mapping[str, str]

    SASL_SSL_OFFSET = 2
    MTLS_OFFSET = 3

    def properties(self, port: int) -> dict[str, str]:
        """The broker properties added for the listeners on ``port`` + 2 and + 3."""
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self.users.items())
        return {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            "listener.name.mtls.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.truststore),
        }

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        return [
            arg
            for name, pw in self.users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={pw}]")
        ]


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    """Host and port of the local broker from ``kafka_bootstrap`` (one 127.0.0.1 address)."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if len(servers) != 1:
        raise BrokerError(
            f"The local broker is a single node with one address, got {bootstrap!r}; "
            "set FRAUDSCORE_KAFKA_BOOTSTRAP to one host:port such as 127.0.0.1:9092"
        )
    host, _, port_text = servers[0].removeprefix("PLAINTEXT://").rpartition(":")
    if host not in LOCAL_HOSTS:
        raise BrokerError(
            f"The local broker only listens on 127.0.0.1, but the bootstrap address is "
            f"{bootstrap!r}; use 127.0.0.1:<port>, or run your own broker at that address"
        )
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65534:
        raise BrokerError(
            f"Bad port in bootstrap address {bootstrap!r}: need 1-65534 "
            "(the controller listens on port + 1)"
        )
    return host, int(port_text)


def render_server_properties(
    port: int, data_dir: Path, secured: SecuredListeners | None = None
) -> str:
    """``server.properties`` of a single-node KRaft broker+controller on 127.0.0.1."""
    controller = port + 1
    listeners = [f"PLAINTEXT://{BIND_HOST}:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT"]
    if secured is not None:
        listeners.append(f"SASL_SSL://{BIND_HOST}:{port + secured.SASL_SSL_OFFSET}")
        listeners.append(f"MTLS://{BIND_HOST}:{port + secured.MTLS_OFFSET}")
        protocols += ["SASL_SSL:SASL_SSL", "MTLS:SSL"]
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{BIND_HOST}:{controller}",
        "listeners": ",".join([*listeners, f"CONTROLLER://{BIND_HOST}:{controller}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join([*protocols, "CONTROLLER:PLAINTEXT"]),
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.max.timeout.ms": "900000",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        **({} if secured is None else secured.properties(port)),
    }
    lines = [f"{key}={value}" for key, value in props.items()]
    return "# Written by fraudscore (app/broker.py); regenerated on every start.\n" + (
        "\n".join(lines) + "\n"
    )


def metadata_broker_count(host: str, port: int, timeout_s: float = 1.0) -> int | None:
    """Live brokers in a Kafka Metadata (v4) response, or None when nothing answers."""
    client_id = b"fraudscore-probe"
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", 0, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(sock, 16)
    except OSError:
        return None
    _size, correlation_id, _throttle_ms, brokers = struct.unpack(">iiii", head)
    return brokers if correlation_id == 7 else None


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed by the broker")
        data += chunk
    return data


def random_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one (base64url of a random
    UUID, never starting with "-"), without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(
            f"`{name}` is not on PATH; the local Kafka broker needs Java 17+ and Maven: "
            f"{INSTALL_HINT}"
        )
    return path


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((BIND_HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaping it if it is our own child)."""
    if pid in _CHILDREN:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                _CHILDREN.discard(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    """argv of a live process; empty if it is gone (or a kernel thread)."""
    for _ in range(40):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or not _alive(pid):
            break
        time.sleep(0.025)  # cmdline reads empty for a moment while a process execs
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def _read_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a file, reading backwards in blocks (logs can be big)."""
    if lines <= 0 or not path.exists():
        return ""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        data, pos = b"", end
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(64 * 1024, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class LocalBroker:
    """One local Kafka broker per ``var/kafka`` directory, managed through its PID file."""

    def __init__(
        self, settings: FraudscoreSettings, secured: SecuredListeners | None = None
    ) -> None:
        if not re.fullmatch(r"[0-9A-Za-z.\-]+", settings.kafka_version):
            raise BrokerError(f"Bad Kafka version {settings.kafka_version!r}")
        self.bootstrap = settings.kafka_bootstrap
        self.secured = secured
        self.version = settings.kafka_version
        self.heap = settings.kafka_heap
        self.dir = settings.kafka_dir.resolve()
        self.version_dir = settings.kafka_cache_dir.resolve() / settings.kafka_version
        self.libs_dir = self.version_dir / "libs"
        self.data_dir = self.dir / "data"
        self.pid_path = self.dir / "broker.pid"
        self.server_properties = self.dir / "server.properties"
        self.log4j_properties = self.dir / "log4j.properties"
        self.cluster_id_path = self.dir / "cluster.id"

    @property
    def log_path(self) -> Path:
        return self.dir / "broker.log"

    @property
    def is_fetched(self) -> bool:
        """Whether the cache holds this version's jars (an interrupted fetch never does)."""
        return (self.libs_dir / f"kafka_2.13-{self.version}.jar").is_file()

    def tail(self, lines: int) -> str:
        return _read_tail(self.log_path, lines)

    # --- fetch -------------------------------------------------------------------------

    def fetch(self) -> Path:
        """Download the broker's jars once (Maven), reuse the cache afterwards."""
        _require_tool("java")
        if self.is_fetched:
            return self.libs_dir
        mvn = _require_tool("mvn")
        self.version_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.version_dir))
        try:
            libs = self._mvn_copy_dependencies(mvn, tmp)
            with contextlib.suppress(OSError):
                os.rename(libs, self.libs_dir)  # atomic: the cache is all or nothing
            if not self.is_fetched:  # rename failed and no concurrent fetch won either
                raise BrokerError(f"Could not move the fetched jars into {self.libs_dir}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.libs_dir

    def _mvn_copy_dependencies(self, mvn: str, workdir: Path) -> Path:
        group, artifact, version = SLF4J_BINDING.split(":")
        pom = _POM.format(
            version=self.version, slf4j_group=group, slf4j_artifact=artifact, slf4j_version=version
        )
        (workdir / "pom.xml").write_text(pom)
        libs = workdir / "libs"
        cmd = [mvn, "-q", "-B", "-f", str(workdir / "pom.xml"), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                cmd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"Maven did not finish fetching Kafka within {exc.timeout:.0f}s"
            ) from None
        if done.returncode != 0 or not (libs / f"kafka_2.13-{self.version}.jar").is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise BrokerError(
                f"Maven could not fetch org.apache.kafka:kafka_2.13:{self.version} "
                f"(exit {done.returncode}):\n{tail}"
            )
        return libs

    # --- configuration -------------------------------------------------------------------

    def write_config(self) -> Path:
        """Write ``server.properties`` and ``log4j.properties``; return the former."""
        _host, port = parse_bootstrap(self.bootstrap)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server_properties.write_text(
            render_server_properties(port, self.data_dir, self.secured)
        )
        self.log4j_properties.write_text(_LOG4J)
        return self.server_properties

    def _java(self, *args: str) -> list[str]:
        return [
            _require_tool("java"),
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.log4j_properties}",
            "-cp",
            f"{self.libs_dir}/*",
            *args,
        ]

    def _run_tool(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            self._java("kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"kafka.tools.StorageTool {args[0]} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}".rstrip()
            )
        return done.stdout

    def _format_storage(self) -> None:
        """Format the KRaft storage once; the cluster id is kept so it never changes."""
        if (self.data_dir / "meta.properties").exists():
            return
        if not self.cluster_id_path.exists():
            self.cluster_id_path.write_text(random_cluster_id() + "\n")
        cluster_id = self.cluster_id_path.read_text().strip()
        scram = [] if self.secured is None else self.secured.scram_arguments()
        self._run_tool(
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.server_properties),
            "--ignore-formatted",
            *scram,
        )

    # --- process -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down of this broker across processes (e.g. two test sessions)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "broker.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_pid(self) -> int | None:
        try:
            text = self.pid_path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _is_our_broker(self, pid: int) -> bool:
        """PID-reuse safety: a live java running kafka.Kafka with *our* server.properties."""
        argv = _cmdline(pid)
        return (
            _alive(pid)
            and bool(argv)
            and os.path.basename(argv[0]) == "java"
            and "kafka.Kafka" in argv
            and str(self.server_properties) in argv
        )

    def live_pid(self) -> int | None:
        """PID of our running broker process, if the PID file points at one."""
        pid = self._read_pid()
        return pid if pid is not None and self._is_our_broker(pid) else None

    def _live_pid_or_drop_stale(self) -> int | None:
        pid = self.live_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
        return pid

    def answers(self) -> bool:
        """Whether the bootstrap address serves Kafka metadata listing at least one broker."""
        _host, port = parse_bootstrap(self.bootstrap)
        return bool(metadata_broker_count(BIND_HOST, port))

    def status(self) -> BrokerStatus:
        pid = self.live_pid()
        return BrokerStatus(
            running=pid is not None and self.answers(),
            pid=pid,
            bootstrap=self.bootstrap,
            log_path=self.log_path,
            data_dir=self.data_dir,
            version=self.version,
        )

    def up(self, timeout_s: float = 60.0) -> int:
        """Start the broker unless it already runs; return its PID once it answers."""
        return self.ensure_running(timeout_s)[0]

    def ensure_running(self, timeout_s: float = 60.0) -> tuple[int, bool]:
        """Like :meth:`up`, also saying whether this call started the broker.

        ``timeout_s`` bounds the wait for the broker to answer; a first fetch of the jars
        (bounded by Maven's own timeout) and the one-off storage format come before it.
        """
        with self._locked():
            pid = self._live_pid_or_drop_stale()
            if pid is not None:
                self._wait_ready(pid, timeout_s, log_offset=None)
                return pid, False
            self.fetch()
            self._check_ports_free()
            self.write_config()
            self._format_storage()
            return self._start(timeout_s), True

    def _start(self, timeout_s: float) -> int:
        """Spawn the broker and wait for it; a broker that fails to come up is stopped."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        if offset > LOG_ROTATE_BYTES:  # keep one previous log, start a fresh one
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
            offset = 0
        pid = self._spawn()
        try:
            self._wait_ready(pid, timeout_s, log_offset=offset)
        except BaseException:
            self._stop(pid, 10.0)
            self.pid_path.unlink(missing_ok=True)
            raise
        return pid

    def _check_ports_free(self) -> None:
        _host, port = parse_bootstrap(self.bootstrap)
        ports = [(port, "client"), (port + 1, "controller")]
        if self.secured is not None:
            ports += [(port + 2, "SASL_SSL"), (port + 3, "mutual TLS")]
        for p, role in ports:
            if _port_in_use(p):
                raise BrokerError(
                    f"{BIND_HOST}:{p} (the broker's {role} port) is already in use by another "
                    f"process, not by the broker fraudscore manages in {self.dir}. Stop that "
                    "process, or pick free ports with FRAUDSCORE_KAFKA_BOOTSTRAP=127.0.0.1:<port> "
                    "(port and port + 1 must be free)"
                )

    def _spawn(self) -> int:
        """Start kafka.Kafka detached in its own session, output appended to broker.log."""
        argv = self._java("kafka.Kafka", str(self.server_properties))
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(self.log_path), append, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        # posix_spawn rather than Popen: no Popen object left to warn "still running" when
        # garbage-collected while the detached broker outlives it (pytest turns that into errors).
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True)
        _CHILDREN.add(pid)
        self.pid_path.write_text(f"{pid}\n")
        return pid

    def _wait_ready(self, pid: int, timeout_s: float, log_offset: int | None) -> None:
        """Wait for the started line in the log (when we launched it) and a metadata answer."""
        deadline = time.monotonic() + timeout_s
        started = log_offset is None
        while True:
            if not self._is_our_broker(pid):
                raise BrokerError(
                    f"The Kafka broker (pid {pid}) exited.\n{self._log_excerpt(log_offset)}"
                )
            started = started or STARTED_LINE in self._log_since(log_offset or 0)
            if started and self.answers():
                return
            if time.monotonic() >= deadline:
                after = (
                    "it was stopped" if log_offset is not None else "run `fraudscore kafka down`"
                )
                raise BrokerError(
                    f"The Kafka broker (pid {pid}) did not answer at {self.bootstrap} within "
                    f"{timeout_s:g}s; {after}.\n{self._log_excerpt(log_offset)}"
                )
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_excerpt(self, offset: int | None) -> str:
        """The end of broker.log, only what this start wrote when its offset is known."""
        if offset is None:
            return f"Last lines of {self.log_path}:\n{self.tail(LOG_TAIL_LINES)}"
        lines = self._log_since(offset).splitlines()[-LOG_TAIL_LINES:]
        return f"Last lines of {self.log_path}:\n" + ("\n".join(lines) or "(nothing logged yet)")

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker in the PID file (SIGTERM, then SIGKILL); False if none ran."""
        with self._locked():
            pid = self._live_pid_or_drop_stale()
            if pid is None:
                return False
            self._stop(pid, timeout_s)
            self.pid_path.unlink(missing_ok=True)
            return True

    def _stop(self, pid: int, timeout_s: float) -> None:
        if not self._is_our_broker(pid):
            return
        os.kill(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout_s):
            return
        if self._is_our_broker(pid):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 10.0):
            raise BrokerError(f"The Kafka broker (pid {pid}) survived SIGKILL")

    @staticmethod
    def _wait_gone(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while _alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True
