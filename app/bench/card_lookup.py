"""Card-feature lookup latency while a worker scores (issue #7).

Run: ``.venv/bin/python -m app.bench.card_lookup [--rate 500] [--tps 2000] [--seconds 20]
[--rounds 2]`` against the broker of the settings (``FRAUDSCORE_KAFKA_BOOTSTRAP``).

One worker process (owning every partition of fresh topics) and one ``fraudscore api``
process are started; ``--cards`` cards are given history first. Then, while transactions
arrive at ``--tps`` (the load generator, paced), a paced client asks for the features of
random known cards at ``--rate`` requests/s in phases of ``--seconds``, alternating
(``--rounds`` times each, so that a change in machine load hits both alike):

- local: the worker's own card route (``/internal/v1/partitions/{p}/cards/{id}/features``),
  what a caller gets from the worker holding the partition, no API hop;
- forwarded: ``GET /v1/cards/{id}/features`` on the API, which finds the owner from the
  consumer group's assignment (cached) and forwards the request to it.

The transactions come from ``fraudscore loadgen`` in a process of its own. The client is
open-loop (``wrk`` is not: it sends the next request when one returns): request
i is due at start + i / rate, and its latency counts from when it was due, so a stall in the
server (or in this client) shows in the percentiles instead of slowing the load down. Every
request takes a keep-alive HTTP/1.1 connection from a pool of at most 64 (waiting for one when
all are busy): a minimal client on asyncio streams, so that the client's own cost stays small.
It runs on the same machine as the servers: its scheduling delay is part of the numbers.
The phases start once the worker has committed the card history. Reported per phase:
answered/s, errors, latency percentiles, and the worker's and the API's CPU share
(``/proc/<pid>/stat``; the worker's includes its scoring), so a change to the lookup path
can be judged by its cost too.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from app.api.auth import Role, mint_token, token_verifier
from app.bench._common import cpu_seconds, fresh_settings, machine_info, wait_committed
from app.loadgen import produce
from app.process import WorkerProcess, free_port
from app.settings import FraudscoreSettings, get_settings
from app.worker_http import CARD_ROUTE
from models.synthetic import generate
from sinks.kafka import ensure_topics, key_partition

_READY_TIMEOUT_S = 180.0
_REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Phase:
    mode: str  # local | forwarded
    latencies_ms: list[float]  # from when each request was due
    errors: Counter[str]  # non-200 statuses (or "failed": no answer) and their counts
    seconds: float  # from the first request due to the last answer
    worker_cpu_s: float  # the worker process's CPU over the phase (scoring included)
    api_cpu_s: float  # the API process's

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class HttpPool:
    """Keep-alive HTTP/1.1 GETs to one host:port (answers with a Content-Length body), on at
    most ``size`` connections at once (a request waits for one: that wait counts as latency).
    A kept connection the server has closed meanwhile is replaced, and the request resent."""

    def __init__(self, base_url: str, size: int = 64) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(size)

    async def get(self, path: str, headers: dict[str, str]) -> int:
        """The status of ``GET path`` (the body is read and dropped)."""
        async with self.slots:
            while self.idle:
                reader, writer = self.idle.pop()
                try:
                    return await self._exchange(reader, writer, path, headers)
                except (OSError, asyncio.IncompleteReadError):
                    writer.close()  # closed by the server while idle: try another
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return await self._exchange(reader, writer, path, headers)

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        headers: dict[str, str],
    ) -> int:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _worker_url(worker: WorkerProcess) -> str:
    if not await worker.wait_for_log("worker joined group", _READY_TIMEOUT_S):
        raise RuntimeError(f"the worker did not start:\n{worker.log_tail()}")
    for line in worker.log_path.read_text().splitlines():
        if "worker HTTP on " in line:
            return line.split("worker HTTP on ", 1)[1].split()[0]
    raise RuntimeError("the worker did not log its HTTP address")


async def _wait_ready(pool: HttpPool, path: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if await pool.get(path, {}) == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{path} on port {pool.port} did not become ready")


@dataclass(frozen=True)
class Target:
    pool: HttpPool
    path_of: Callable[[str], str]


async def _paced(
    target: Target, cards: list[str], rate: float, seconds: float, token: str
) -> tuple[list[float], Counter[str]]:
    """GET the card path of random cards at ``rate``/s for ``seconds``; latencies from when
    each request was due (ms), and the non-200 answers (or failures) by status."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    rng = random.Random(7)

    async def one(due: float, card: str) -> None:
        try:
            request = target.pool.get(target.path_of(card), headers)
            status = str(await asyncio.wait_for(request, _REQUEST_TIMEOUT_S))
        except TimeoutError:
            status = "no answer"  # its connection is dropped with it
        except (OSError, asyncio.IncompleteReadError):
            status = "failed"
        latencies.append((time.perf_counter() - due) * 1000)
        if status != "200":
            errors[status] += 1

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, rng.choice(cards))))
    await asyncio.gather(*tasks)
    return latencies, errors


async def run(args: argparse.Namespace, root: Path) -> tuple[list[Phase], FraudscoreSettings]:
    settings = fresh_settings(
        get_settings(),
        "lookup",
        root,
        partitions=args.partitions,
        api_port=free_port(),
        api_jwt_secret=SecretStr(secrets.token_hex(32)),
        environment="test",
        log_format="text",
    )
    await ensure_topics(settings)
    seeded = await produce(settings, count=args.cards * 4, cards=args.cards, seed=1, rate=0)
    cards = sorted(
        {str(s.record["card_id"]) for s in generate(seeded.valid, cards=args.cards, seed=1)}
    )
    token = mint_token(token_verifier(settings), "bench", [Role.SERVICE], 3600, time.time())
    worker = WorkerProcess(settings, root / "worker.log")
    api = WorkerProcess(settings, root / "api.log", command="api")
    phases: list[Phase] = []
    try:
        worker_url = await _worker_url(worker)
        local = Target(
            HttpPool(worker_url),
            lambda card: CARD_ROUTE.format(
                partition=key_partition(card.encode(), settings.partitions), card_id=card
            ),
        )
        forwarded = Target(
            HttpPool(f"http://127.0.0.1:{settings.api_port}"),
            lambda card: f"/v1/cards/{card}/features",
        )
        await _wait_ready(local.pool, "/readyz")
        await _wait_ready(forwarded.pool, "/healthz")
        # else the first phase also pays for scoring the history
        await wait_committed(settings, worker, _READY_TIMEOUT_S)
        for target in (local, forwarded):  # warm up: connections, the API's assignment cache
            await _paced(target, cards, 50, 1, token)
        count = int(args.tps * (args.seconds * 2 * args.rounds + 10))
        loadgen = None
        if count:
            loadgen = WorkerProcess(
                settings,
                root / "loadgen.log",
                [f"--rate={args.tps:g}", f"--count={count}", f"--cards={args.cards}", "--seed=2"],
                command="loadgen",
            )
            await asyncio.sleep(3)  # the load generator reaches its rate
        for _ in range(args.rounds):
            for mode, target in (("local", local), ("forwarded", forwarded)):
                started, cpu = time.perf_counter(), _cpu(worker, api)
                latencies, errors = await _paced(target, cards, args.rate, args.seconds, token)
                worker_cpu, api_cpu = (b - a for a, b in zip(cpu, _cpu(worker, api), strict=True))
                phases.append(
                    Phase(
                        mode, latencies, errors, time.perf_counter() - started, worker_cpu, api_cpu
                    )
                )
        if loadgen is not None:
            loadgen.stop()
        local.pool.close()
        forwarded.pool.close()
    finally:
        api.stop()
        worker.stop()
    return phases, settings


def _cpu(*processes: WorkerProcess) -> tuple[float, ...]:
    return tuple(cpu_seconds(p.process.pid) for p in processes)


def _commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    done = subprocess.run(  # noqa: S603 - fixed argv
        [git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def _report(args: argparse.Namespace, phases: list[Phase], settings: FraudscoreSettings) -> None:
    console = Console(width=140)
    info = Table(title="card-feature lookup latency", show_header=False)
    for name, value in [*machine_info(settings.kafka_version), ("commit", _commit())]:
        info.add_row(name, value)
    info.add_row(
        "load",
        f"{args.rate:g} req/s for {args.seconds:g} s per phase, worker at "
        f"{args.tps:g} TPS, {args.cards} cards, {args.partitions} partitions",
    )
    console.print(info)
    table = Table(
        "phase",
        "mode",
        "requests",
        "answered/s",
        "errors",
        "p50 ms",
        "p99 ms",
        "max ms",
        "worker CPU",
        "API CPU",
    )
    merged = [
        Phase(
            mode,
            [x for p in phases if p.mode == mode for x in p.latencies_ms],
            sum((p.errors for p in phases if p.mode == mode), Counter[str]()),
            sum(p.seconds for p in phases if p.mode == mode),
            sum(p.worker_cpu_s for p in phases if p.mode == mode),
            sum(p.api_cpu_s for p in phases if p.mode == mode),
        )
        for mode in ("local", "forwarded")
    ]
    for name, phase in [
        *((str(i), p) for i, p in enumerate(phases, 1)),
        *(("all", m) for m in merged),
    ]:
        table.add_row(
            name,
            phase.mode,
            str(len(phase.latencies_ms)),
            f"{len(phase.latencies_ms) / phase.seconds:.0f}",
            ", ".join(f"{status}: {n}" for status, n in sorted(phase.errors.items())) or "0",
            f"{phase.percentile(0.5):.2f}",
            f"{phase.percentile(0.99):.2f}",
            f"{max(phase.latencies_ms):.2f}",
            f"{phase.worker_cpu_s / phase.seconds:.0%}",
            f"{phase.api_cpu_s / phase.seconds:.0%}",
        )
    console.print(table)
    local, forwarded = (statistics.median(m.latencies_ms) for m in merged)
    console.print(f"forwarded / local p50: {forwarded / local:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="lookups per second")
    parser.add_argument(
        "--tps", type=float, default=2000.0, help="transactions per second (0: none)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="phases of each mode")
    parser.add_argument("--cards", type=int, default=5000, help="cards with history")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        phases, settings = asyncio.run(run(args, Path(tmp)))
    _report(args, phases, settings)


if __name__ == "__main__":
    main()
