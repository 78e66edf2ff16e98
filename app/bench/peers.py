"""``fraudscore bench``: fraudscore against its peers and its ceiling, side by side, on one
broker, in one run (issue #8).

One input topic is filled first with ``events`` load-generator transactions (``cards`` cards,
seed 3, out-of-order arrivals as the generator makes them). Then, round after round, each
contender reads that same input with a fresh group, output topic and state dir, in its own
child process, one after the other:

- ``pass-through``: the ceiling, :mod:`app.bench.passthrough` (consume → produce → offsets in
  one transaction, fraudscore's checkpoint cadence), with confluent-kafka (the data path's
  client, ADR 0003) and with aiokafka; it measures itself from its first fetch to its last
  commit;
- ``fraudscore`` at-least-once and exactly-once: ``fraudscore worker``, full features, the
  default model, policy and reason codes (:func:`app.bench.exactly_once.throughput_run`);
- ``quix``: Quix Streams exactly-once (:mod:`app.bench.quix_contender`, in ``.venv-quix``);
- ``faust``: faust-streaming done the textbook way, ``exactly_once``
  (:mod:`app.bench.faust_contender`).

The peers commit at fraudscore's checkpoint cadence (``checkpoint_interval_ms``,
``checkpoint_max_records``). Throughput is measured from the first decision visible to a
``read_committed`` follower to the last (:mod:`app.bench.exactly_once`), with the contender's
CPU (all its threads, ``/proc``) and, given ``broker_pid``, the broker's. Then every output
topic is read whole with ``read_committed`` and checked: one record per input transaction
(:mod:`app.bench.verify`); a contender that is not exact is flagged in the table, with what
is missing or duplicated. Latency (produce → decision visible, p50/p99/p99.9) is measured
for the stream processors at each offered rate with the same paced producer
(:func:`app.bench.exactly_once.latency`); the pass-through has none (it copies a fixed
input and exits).

The machine is shared: the load average is printed with every number; read the ratios.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.progress import Progress
from rich.table import Table

from app.bench import passthrough
from app.bench._common import Launch, Load, load1, machine_info, maybe_cpu_seconds
from app.bench.exactly_once import (
    ALO,
    EO,
    Latency,
    Options,
    Throughput,
    latency,
    markdown,
    preproduce,
    throughput_run,
)
from app.bench.peer_pipeline import ContenderConfig
from app.bench.verify import Verdict, committed_ids, verdict
from app.model_cache import cached_default_model
from app.settings import FraudscoreSettings
from sinks.kafka import ensure_topics

_SEED = 3  # exactly_once's: the ids are tx_3_000000000 ...
P99_TARGET_MS = 85.0
SCALE_OUT_TARGET_TPS = 15_000  # with as many worker processes as the cores allow
_REPO = Path(__file__).resolve().parents[2]
DEFAULT_QUIX_PYTHON = _REPO / ".venv-quix" / "bin" / "python"


@dataclass(frozen=True, slots=True)
class Contender:
    name: str  # as in the table
    guarantee: str
    passthrough_client: str | None = None  # a pass-through with this client
    launch: Launch | None = None  # None: fraudscore's worker
    capped: bool = False  # too slow for the full input: gets ``capped_events`` of its own

    @property
    def paced(self) -> bool:
        """Whether it has a latency run (the pass-through copies a fixed input and exits)."""
        return self.passthrough_client is None


def _peer(module: str, python: str) -> Launch:
    def launch(settings: FraudscoreSettings) -> tuple[list[str], dict[str, str]]:
        config = ContenderConfig(
            bootstrap=settings.kafka_bootstrap,
            input_topic=settings.input_topic,
            output_topic=settings.decisions_topic,
            group=settings.group_id,
            state_dir=str(settings.state_dir),
            exactly_once=settings.processing_guarantee == EO,
            commit_interval_s=settings.checkpoint_interval_ms / 1000,
            commit_every=settings.checkpoint_max_records,
            model_cache_dir=str(settings.model_cache_dir),
        )
        return [python, "-m", module], config.env()

    return launch


def contenders(quix_python: Path) -> dict[str, Contender]:
    """Every contender by its command-line name."""
    return {
        "ceiling-confluent": Contender("pass-through confluent-kafka", EO, "confluent-kafka"),
        "ceiling-aiokafka": Contender("pass-through aiokafka", EO, "aiokafka"),
        "fraudscore-alo": Contender("fraudscore", ALO),
        "fraudscore-eo": Contender("fraudscore", EO),
        "quix-eo": Contender(
            "Quix Streams", EO, launch=_peer("app.bench.quix_contender", str(quix_python))
        ),
        "faust-eo": Contender(
            "faust-streaming",
            EO,
            launch=_peer("app.bench.faust_contender", sys.executable),
            capped=True,
        ),
    }


@dataclass(frozen=True, slots=True)
class Measured:
    """One contender's throughput run and the verdict on its output."""

    events: int  # the input's transactions
    rate: float  # events/s
    cpu_us: float  # contender CPU per event
    broker_us: float | None
    verdict: Verdict
    load: Load
    output_topic: str


@dataclass(slots=True)
class Result:
    contender: Contender
    runs: list[Measured] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def cpu_s_per_1k(self) -> float:
        return statistics.median(r.cpu_us for r in self.runs) / 1000

    @property
    def broker_s_per_1k(self) -> float | None:
        values = [r.broker_us for r in self.runs if r.broker_us is not None]
        return statistics.median(values) / 1000 if values else None

    @property
    def exact(self) -> bool:
        return all(r.verdict.exact for r in self.runs)

    def at(self, rate: int) -> Latency | None:
        return next((lat for lat in self.latencies if lat.offered_tps == rate), None)


# --- measuring ---------------------------------------------------------------------------------


async def _verified(
    settings: FraudscoreSettings, topic: str, events: int
) -> Verdict:  # every input id exactly once?
    expected = (f"tx_{_SEED}_{i:09d}" for i in range(events))
    return verdict(expected, await committed_ids(settings, topic))


async def _passthrough(opts: Options, input_topic: str, c: Contender, n: int) -> Measured:
    assert c.passthrough_client is not None
    settings = opts.fresh(f"tp{n}-pass-{c.passthrough_client[:5]}", input_topic=input_topic)
    await ensure_topics(settings)
    before, broker_before = load1(), maybe_cpu_seconds(opts.broker_pid)
    measured = await asyncio.to_thread(
        passthrough.run_child, c.passthrough_client, settings, opts.events
    )
    broker_after = maybe_cpu_seconds(opts.broker_pid)
    load = Load(before, load1())
    broker_us = None  # over the child's whole life (start-up included): an upper bound
    if broker_before is not None and broker_after is not None:
        broker_us = (broker_after - broker_before) / opts.events * 1e6
    return Measured(
        events=opts.events,
        rate=opts.events / measured["seconds"],
        cpu_us=measured["cpu"] / opts.events * 1e6,
        broker_us=broker_us,
        verdict=await _verified(settings, settings.decisions_topic, opts.events),
        load=load,
        output_topic=settings.decisions_topic,
    )


async def _stream_processor(opts: Options, input_topic: str, c: Contender, n: int) -> Measured:
    tag = c.name.split()[0].lower()
    result: Throughput
    result, settings = await throughput_run(
        opts, input_topic, c.guarantee, n, contender=tag, launch=c.launch
    )
    return Measured(
        events=opts.events,
        rate=result.rate,
        cpu_us=result.cpu_us,
        broker_us=result.broker_us,
        verdict=await _verified(settings, settings.decisions_topic, opts.events),
        load=result.load,
        output_topic=settings.decisions_topic,
    )


async def run_bench(
    opts: Options, chosen: Sequence[Contender], progress: Progress, capped_events: int
) -> list[Result]:
    """Throughput rounds over ``chosen`` (in order, alternating), then the latency runs. A
    ``capped`` contender reads its own input of ``capped_events`` transactions (same
    generator, cards and seed) instead of ``opts.events``."""
    await asyncio.to_thread(cached_default_model, opts.base.model_cache_dir)  # trained once
    results = [Result(c) for c in chosen]
    paced = [r for r in results if r.contender.paced and opts.rates]
    sizes = {opts.events} | {min(opts.events, capped_events) for c in chosen if c.capped}
    steps = len(sizes) + opts.rounds * len(results) + len(paced)
    task = progress.add_task("pre-producing the input", total=steps)
    inputs: dict[int, tuple[Options, str]] = {}
    for size in sorted(sizes, reverse=True):
        sized = replace(opts, events=size)
        topic, _, produce_s = await preproduce(sized)
        inputs[size] = (sized, topic)
        progress.console.print(f"{size:,} transactions in {topic} ({produce_s:.1f} s)")
        progress.advance(task)
    for n in range(1, opts.rounds + 1):
        for result in results:
            c = result.contender
            progress.update(task, description=f"round {n}: {c.name} {c.guarantee}")
            sized, topic = inputs[min(opts.events, capped_events) if c.capped else opts.events]
            run = _passthrough if c.passthrough_client else _stream_processor
            measured = await run(sized, topic, c, n)
            result.runs.append(measured)
            progress.console.print(
                f"round {n} {c.name} {c.guarantee}: {measured.rate:,.0f} events/s, "
                f"{measured.cpu_us:.0f} µs CPU/event, {measured.verdict}, load {measured.load}"
            )
            progress.advance(task)
    for result in paced:
        c = result.contender
        progress.update(task, description=f"latency: {c.name} {c.guarantee}")
        tag = c.name.split()[0].lower()
        result.latencies = await latency(opts, c.guarantee, contender=tag, launch=c.launch)
        progress.advance(task)
    return results


# --- reporting ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "not decided" if value == float("inf") else f"{value:,.1f}"


def _latency_cell(lat: Latency | None) -> str:
    if lat is None:
        return "n/a"
    cell = f"{_ms(lat.p(50))} / {_ms(lat.p(99))} / {_ms(lat.p(99.9))}"
    if lat.decided < lat.sent or lat.duplicates:
        cell += f" ({lat.decided:,}/{lat.sent:,} decided, +{lat.duplicates:,} dup)"
    return cell


def results_table(results: Sequence[Result], rates: Sequence[int]) -> Table:
    table = Table(
        title="fraudscore bench: throughput median over rounds; latency p50 / p99 / p99.9 ms "
        "produce → decision visible (read_committed)",
    )
    columns = ["contender", "guarantee", "input", "events/s", "CPU s / 1k events",
               "broker CPU s / 1k events", "output (read_committed)"]  # fmt: skip
    columns += [f"latency @ {rate:,} TPS" for rate in rates] + ["load 1m"]
    for name in columns:
        table.add_column(name, justify="left" if name in columns[:2] + columns[6:7] else "right")
    for r in results:
        verdicts = "; ".join(dict.fromkeys(str(m.verdict) for m in r.runs))
        flag = "" if r.exact else "NOT EXACT: "
        broker = r.broker_s_per_1k
        table.add_row(
            r.contender.name, r.contender.guarantee, f"{r.runs[0].events:,}", f"{r.rate:,.0f}",
            f"{r.cpu_s_per_1k:.3f}", "n/a" if broker is None else f"{broker:.3f}",
            flag + verdicts, *(_latency_cell(r.at(rate)) for rate in rates),
            ", ".join(str(m.load) for m in r.runs),
        )  # fmt: skip
    return table


def _find(results: Sequence[Result], name: str, guarantee: str) -> Result | None:
    return next(
        (r for r in results if r.contender.name == name and r.contender.guarantee == guarantee),
        None,
    )


def targets_table(results: Sequence[Result], workers: int) -> Table:
    """Issue #8's targets, where they can be read from this run (fraudscore ran ``workers``
    worker processes)."""
    table = Table(title="Targets (issue #8)")
    for name in ("target", "measured", "met"):
        table.add_column(name, justify="left" if name == "target" else "right")
    eo = _find(results, "fraudscore", EO)
    if eo is None:
        return table
    table.add_row(
        f"EO ≥ {SCALE_OUT_TARGET_TPS:,} events/s end-to-end ({workers} worker process"
        f"{'es' if workers > 1 else ''})",
        f"{eo.rate:,.0f} events/s", "yes" if eo.rate >= SCALE_OUT_TARGET_TPS else "NO",
    )  # fmt: skip
    for peer, label, need in (
        (_find(results, "Quix Streams", EO), "EO events/s ≥ 1.0x Quix Streams EO", 1.0),
        (_find(results, "pass-through confluent-kafka", EO),
         "EO events/s ≥ 60 % of the confluent-kafka pass-through", 0.6),
    ):  # fmt: skip
        if peer is not None:
            ratio = eo.rate / peer.rate
            note = "" if peer.exact else " (peer's output not exact)"
            table.add_row(label, f"{ratio:.2f}x{note}", "yes" if ratio >= need else "NO")
    at_5k = eo.at(5000)
    if at_5k is not None:
        p99 = at_5k.p(99)
        table.add_row(
            f"EO p99 at 5,000 TPS ≤ {P99_TARGET_MS:.0f} ms", f"{_ms(p99)} ms",
            "yes" if p99 <= P99_TARGET_MS else "NO",
        )  # fmt: skip
    return table


def chart(results: Sequence[Result], rates: Sequence[int], path: Path, title: str) -> None:
    """Events/s per contender and p99 latency per offered rate, as a PNG; a contender whose
    output was not exact is hatched and marked."""
    import matplotlib  # noqa: PLC0415 - only the bench draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    def label(r: Result) -> str:
        name = r.contender.name.replace(" ", "\n", 1)
        return f"{name}\n{r.contender.guarantee}" + ("" if r.exact else "\n(NOT EXACT)")

    labels = [label(r) for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    bars = left.bar(range(len(results)), [r.rate for r in results], color="tab:blue")
    for bar, r in zip(bars, results, strict=True):
        if not r.exact:
            bar.set_hatch("//")
            bar.set_color("tab:red")
    left.set_xticks(range(len(results)), labels, fontsize=7)
    left.set_ylabel("events/s at saturation")
    left.set_title("Throughput (median over rounds)")
    paced = [r for r in results if r.latencies]
    width = 0.8 / max(1, len(rates))
    for i, rate in enumerate(rates):
        values = [(lat.p(99) if (lat := r.at(rate)) else 0.0) for r in paced]
        finite = [v if v != float("inf") else 0.0 for v in values]
        left_edges = [x + i * width for x in range(len(paced))]
        right.bar(left_edges, finite, width, label=f"{rate:,} TPS offered")
        for x, value in zip(left_edges, values, strict=True):
            if value == float("inf"):  # some ids never decided: no finite p99 to draw
                right.annotate("not\ndecided", (x, P99_TARGET_MS), ha="center", fontsize=6)
    right.axhline(P99_TARGET_MS, color="grey", linestyle="--", label=f"{P99_TARGET_MS:.0f} ms")
    right.set_xticks(
        [x + width * (len(rates) - 1) / 2 for x in range(len(paced))],
        [label(r) for r in paced],
        fontsize=7,
    )
    right.set_yscale("log")
    right.set_ylabel("p99 produce → decision visible, ms (log)")
    right.set_title("Latency (read_committed)")
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions(quix_python: Path) -> str:
    """Library versions of the contenders (Quix's from its own virtualenv)."""

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    quix = "not installed"
    if quix_python.exists():
        import subprocess  # noqa: PLC0415

        quix = (
            subprocess.run(  # noqa: S603 - the virtualenv's own python
                [str(quix_python), "-c", _QUIX_VERSIONS],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or "broken"
        )
    return (
        f"faust-streaming {installed('faust-streaming')}, Quix Streams {quix}, "
        f"matplotlib {installed('matplotlib')}"
    )


_QUIX_VERSIONS = (
    "from importlib.metadata import version as v; "
    "print(f\"{v('quixstreams')} (confluent-kafka {v('confluent-kafka')})\")"
)


def header(opts: Options, quix_python: Path, command: str) -> Table:
    table = Table.grid(padding=(0, 2))
    for key, value in machine_info(opts.base.kafka_version):
        table.add_row(key, value)
    b = opts.base
    table.add_row("contenders", versions(quix_python))
    table.add_row(
        "cadence",
        f"checkpoint/commit every {b.checkpoint_interval_ms} ms or "
        f"{b.checkpoint_max_records:,} records, {opts.partitions} partitions; fraudscore "
        f"{opts.throughput_workers} worker process(es) in one group, the others one process",
    )
    table.add_row("broker at", b.kafka_bootstrap)
    table.add_row("command", command)
    table.add_row("run dir", str(opts.root))
    table.add_row("started", time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    return table


def report(results: Sequence[Result], rates: Sequence[int], workers: int) -> list[Table]:
    return [results_table(results, rates), targets_table(results, workers)]


def as_markdown(tables: Sequence[Table]) -> str:
    return "\n\n".join(markdown(t) for t in tables)
