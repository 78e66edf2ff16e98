"""The reference authorization-service client (``fraudscore authorizer``): the service as the
card network's authorization path sees it, from the outside.

For each transaction it produces to the input topic (one by one, at a steady rate,
:mod:`app.pacer`) it waits for the decision with the same transaction id on the decisions
topic, read with ``read_committed`` (:mod:`app.follower`). A decision that is not there
within the timeout (the authorization window, 200 ms by default) is replaced by the fallback
decision, as a real authorization service must answer in time whatever happens; one that
arrives later still is counted as late and otherwise ignored.

:class:`Ledger` is the pure bookkeeping (sent, decided, fell back, latencies); :func:`authorize`
wires it to Kafka. The screen is the caller's, through :class:`AuthorizerView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from app.errors import AuthorizerError
from app.follower import DecisionFollower
from app.latency import LatencySummary
from app.pacer import Paced, send_one_by_one
from app.settings import FraudscoreSettings
from features.pan import mask_pans
from features.validation import Rejection, decode_transaction
from models.policy import Outcome
from sinks.kafka import ensure_topics, request_producer

DEFAULT_TIMEOUT_MS = 200
_FETCH_WAIT_MS = 5  # the broker answers a fetch at once when records are there anyway
_POLL_MS = 5  # how often pending transactions are checked against their deadline


class AuthorizerView(Protocol):
    def sent(self, n: int) -> None: ...

    def answered(self, outcome: str, *, fell_back: bool) -> None: ...


class Answer(NamedTuple):
    outcome: str  # APPROVE, REVIEW or DECLINE
    fell_back: bool  # the fallback, given for want of a decision in time


@dataclass(slots=True)
class Ledger:
    """Transactions sent and how each was answered; times are ``time.perf_counter()``."""

    timeout_s: float
    fallback: Outcome
    decided: int = 0
    fell_back: int = 0
    late: int = 0  # decisions that arrived after their fallback was given
    outcomes: Counter[str] = field(default_factory=Counter)  # the answers, fallbacks included
    latencies_ms: list[float] = field(default_factory=list)  # send → decision, decided only
    _pending: dict[str, float] = field(default_factory=dict)  # transaction id → sent at
    _deadlines: deque[tuple[float, str]] = field(default_factory=deque)  # in send order
    _given_up: set[str] = field(default_factory=set)

    def sent(self, transaction_id: str, at: float) -> None:
        self._pending[transaction_id] = at
        self._deadlines.append((at + self.timeout_s, transaction_id))

    def seen(self, transaction_id: str, decision: str, at: float) -> Answer | None:
        """A decision arrived at ``at``: the answer given now, if any (None: not one of
        ours, or its fallback was given already)."""
        sent_at = self._pending.get(transaction_id)
        if sent_at is None:
            if transaction_id in self._given_up:
                self.late += 1
            return None
        if at - sent_at > self.timeout_s:  # arrived, but after the authorization window
            self.late += 1
            return self._fall_back(transaction_id)
        del self._pending[transaction_id]
        self.decided += 1
        self.outcomes[decision] += 1
        self.latencies_ms.append((at - sent_at) * 1000)
        return Answer(decision, fell_back=False)

    def expire(self, now: float) -> list[Answer]:
        """Give the fallback to every transaction whose window closed before ``now`` with no
        decision seen."""
        answers = []
        while self._deadlines and self._deadlines[0][0] < now:
            _, transaction_id = self._deadlines.popleft()
            if transaction_id in self._pending:
                answers.append(self._fall_back(transaction_id))
        return answers

    def _fall_back(self, transaction_id: str) -> Answer:
        del self._pending[transaction_id]
        self._given_up.add(transaction_id)
        self.fell_back += 1
        self.outcomes[self.fallback.value] += 1
        return Answer(self.fallback.value, fell_back=True)

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def answer_times_ms(self) -> list[float]:
        """How long the authorization waited for each answer: the decision's latency, or the
        whole window for a fallback."""
        return self.latencies_ms + [self.timeout_s * 1000] * self.fell_back


@dataclass(frozen=True, slots=True)
class AuthorizerResult:
    sent: int
    decided: int
    fell_back: int
    late: int
    outcomes: dict[str, int]
    timeout_ms: int
    fallback: str
    latency: LatencySummary  # send → decision seen, over the decided transactions
    answer: LatencySummary  # send → answer given, over all (a fallback at the timeout)
    elapsed_s: float
    rate: float  # transactions sent per second, achieved
    max_behind_ms: float  # how far the sender fell behind its schedule, at worst

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "decided": self.decided,
            "fell_back": self.fell_back,
            "late_decisions": self.late,
            "outcomes": self.outcomes,
            "timeout_ms": self.timeout_ms,
            "fallback": self.fallback,
            "latency_ms": self.latency.as_dict(),
            "answer_ms": self.answer.as_dict(),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 1),
            "max_behind_ms": round(self.max_behind_ms, 3),
        }


def single(settings: FraudscoreSettings, raw: str) -> Paced:
    """One transaction given as JSON text (the input topic's format), checked as the worker
    would check it, so that a bad one is refused here rather than dead-lettered."""
    value = raw.encode()
    transaction = decode_transaction(value, max_bytes=settings.max_record_bytes)
    if isinstance(transaction, Rejection):
        detail = mask_pans(transaction.detail.encode()).decode()
        raise AuthorizerError(
            f"not a valid transaction ({transaction.reason}: {detail}); the format is in the "
            "README's 'Records' section"
        )
    return Paced(transaction.transaction_id, transaction.card_id.encode(), value)


async def authorize(
    settings: FraudscoreSettings,
    records: Sequence[Paced],
    *,
    rate: float,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    fallback: Outcome = Outcome.APPROVE,
    view: AuthorizerView | None = None,
) -> AuthorizerResult:
    """Send ``records`` at ``rate`` per second (0: at once) and answer each within
    ``timeout_ms``: with its decision, or with ``fallback``."""
    await ensure_topics(settings)
    ledger = Ledger(timeout_ms / 1000, fallback)
    follower = DecisionFollower(settings, _FETCH_WAIT_MS)
    await follower.start(from_end=True)  # before the first send: no decision can be missed
    sending = asyncio.Event()
    sending.set()
    collector = asyncio.create_task(_collect(follower, ledger, sending, view))
    try:
        elapsed, behind = await _send(settings, records, rate, ledger, view)
        sending.clear()
        await collector
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await follower.stop()
    return AuthorizerResult(
        sent=len(records),
        decided=ledger.decided,
        fell_back=ledger.fell_back,
        late=ledger.late,
        outcomes={o.value: ledger.outcomes[o.value] for o in Outcome},
        timeout_ms=timeout_ms,
        fallback=fallback.value,
        latency=LatencySummary.of(ledger.latencies_ms),
        answer=LatencySummary.of(ledger.answer_times_ms()),
        elapsed_s=elapsed,
        rate=len(records) / elapsed if elapsed > 0 else 0.0,
        max_behind_ms=behind * 1000,
    )


async def _send(
    settings: FraudscoreSettings,
    records: Sequence[Paced],
    rate: float,
    ledger: Ledger,
    view: AuthorizerView | None,
) -> tuple[float, float]:
    def stamp(record: Paced) -> None:
        ledger.sent(record.transaction_id, time.perf_counter())
        if view is not None:
            view.sent(1)

    producer = request_producer(settings)
    return await send_one_by_one(producer, settings.input_topic, records, rate, stamp)


async def _collect(
    follower: DecisionFollower,
    ledger: Ledger,
    sending: asyncio.Event,
    view: AuthorizerView | None,
) -> None:
    """Match decisions to transactions and give fallbacks, until every transaction sent has
    its answer and nothing more is being sent."""
    while sending.is_set() or ledger.waiting:
        at, seen = await follower.poll_stamped(timeout_ms=_POLL_MS)
        answers = [ledger.seen(d.transaction_id, d.decision, at) for d in seen]
        answers += ledger.expire(at)  # nothing else had arrived by ``at``
        if view is not None:
            for answer in answers:
                if answer is not None:
                    view.answered(answer.outcome, fell_back=answer.fell_back)
