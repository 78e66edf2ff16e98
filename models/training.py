"""Training without skew, and its out-of-time evaluation.

**Features.** :func:`build_features` feeds the input log, in arrival order, through
:func:`models.pipeline.featurize`, the very function the worker runs on each fetched batch,
with an in-memory card store. A row's features are therefore what the worker computed when
that transaction arrived: point-in-time correct by construction, nothing from the future.

**Merchant features.** The labels also give the merchant-risk features
(:mod:`features.merchant`): each row gets its merchant's counts from the snapshot of its
event day computed from the dataset's labels (:class:`~features.merchant.LabelSnapshots`),
by the function the aggregator publishes the online snapshots with; a snapshot holds only
labels reported before the day before the row's, so nothing from after the row is used.

**Labels.** A transaction is fraud for training if the latest label for it reported by the
cut-off says fraud (:class:`LabelBook`); a transaction with no label by then counts as
genuine, as it does for a fraud team that learns of fraud only from chargebacks.

**Split** (:class:`Split`): on UTC day boundaries, the first ``warmup_days`` only build card
state (their features lack history); then the training period; then a ``gap_days`` gap; then
the test period. The cut-off is the start of the test period: training uses the labels
reported by then, so the gap gives the chargebacks of the last training days time to arrive.
The test period is scored with every label in the data (the matured truth).

**Model**: scikit-learn's histogram gradient-boosted trees (fast on a million rows, exact
and batch-independent per row like the default model's trees). Class imbalance: fraud rows
are weighted up as if fraud were ``fraud_weight_share`` of the rows. Calibration: the
weighting inflates scores, so a Platt sigmoid is fitted on a held-out ``calibration_share``
of the training period's *cards* (same period, same label maturity, cards the trees never
saw); the sigmoid is monotonic, so it changes no ranking metric, only makes the score a
probability the policy's thresholds can mean.

**Baseline**: the policy's hard rule (:func:`models.policy.velocity_rule`, more than 3
transactions totalling more than 1,000 within 60 s) as a 0/1 score.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from features.merchant import SnapshotBook
from features.schema import FEATURE_NAMES
from features.stream import DEFAULT_STREAM_PARAMS, MemoryCardStore, StreamParams
from models.errors import TrainingError
from models.evaluation import DAY_MS, Metrics, card_precision_bound, evaluate
from models.label import FRAUD, LabelRecord
from models.pipeline import NO_SNAPSHOTS, SourceRecord, featurize
from models.policy import Policy, decide, velocity_rule
from models.scorer import Scorer

CHUNK = 20_000  # records featurized between progress reports


@dataclass(frozen=True, slots=True)
class FeatureTable:
    """One row per accepted input record, in arrival order."""

    x: np.ndarray  # (rows, len(FEATURE_NAMES)) float64: exactly the worker's vectors
    offsets: np.ndarray  # int64: the source record's offset (its arrival position)
    event_time_ms: np.ndarray  # int64
    cards: np.ndarray  # the card tokens (object array of str)
    transaction_ids: np.ndarray  # object array of str
    rejected: int  # input records the validator rejected (dead letters in the worker)


def build_features(
    records: Iterable[SourceRecord],
    *,
    max_record_bytes: int,
    params: StreamParams = DEFAULT_STREAM_PARAMS,
    merchants: SnapshotBook = NO_SNAPSHOTS,
    on_progress: Callable[[int], None] | None = None,
) -> FeatureTable:
    """The feature vector of every record as the worker computes it, in arrival order, with
    the merchant snapshots of ``merchants`` (:class:`features.merchant.LabelSnapshots` over
    the labels: each day's as the aggregator publishes it from the same labels)."""
    store = MemoryCardStore()
    parts: list[FeatureTable] = []
    for chunk in _chunks(iter(records)):
        accepted, rejected = featurize(
            chunk, store, max_record_bytes=max_record_bytes, params=params, merchants=merchants
        )
        parts.append(
            FeatureTable(
                x=np.asarray([f.vector for f in accepted], dtype=np.float64).reshape(
                    len(accepted), len(FEATURE_NAMES)
                ),
                offsets=np.asarray([f.record.offset for f in accepted], dtype=np.int64),
                event_time_ms=np.asarray([f.txn.event_time_ms for f in accepted], np.int64),
                cards=np.asarray([f.txn.card_id for f in accepted], dtype=object),
                transaction_ids=np.asarray([f.txn.transaction_id for f in accepted], object),
                rejected=len(rejected),
            )
        )
        if on_progress is not None:
            on_progress(len(chunk))
    return _concatenate(parts)


def _chunks(records: Iterator[SourceRecord]) -> Iterator[list[SourceRecord]]:
    while chunk := list(islice(records, CHUNK)):
        yield chunk


def _concatenate(parts: list[FeatureTable]) -> FeatureTable:
    if not parts:
        raise TrainingError("the input log is empty: generate data first (`fraudscore generate`)")
    return FeatureTable(
        x=np.concatenate([p.x for p in parts]),
        offsets=np.concatenate([p.offsets for p in parts]),
        event_time_ms=np.concatenate([p.event_time_ms for p in parts]),
        cards=np.concatenate([p.cards for p in parts]),
        transaction_ids=np.concatenate([p.transaction_ids for p in parts]),
        rejected=sum(p.rejected for p in parts),
    )


class LabelBook:
    """Every label received, to answer "was this transaction fraud, as known at time T?"."""

    def __init__(self, labels: Iterable[LabelRecord]) -> None:
        self._by_transaction: dict[str, list[tuple[int, bool]]] = {}
        for label in labels:
            entry = (label.reported_at_ms, label.label == FRAUD)
            self._by_transaction.setdefault(label.transaction_id, []).append(entry)
        for history in self._by_transaction.values():
            history.sort()

    def fraud(self, transaction_ids: np.ndarray, known_at_ms: int | None = None) -> np.ndarray:
        """1 where the latest label reported by ``known_at_ms`` (None: ever) says fraud."""
        out = np.zeros(len(transaction_ids), dtype=np.int64)
        for i, transaction_id in enumerate(transaction_ids):
            history = self._by_transaction.get(transaction_id)
            if history is None:
                continue
            known = [
                is_fraud for at, is_fraud in history if known_at_ms is None or at <= known_at_ms
            ]
            out[i] = bool(known) and known[-1]
        return out


@dataclass(frozen=True, slots=True)
class Split:
    """Out-of-time periods, in epoch ms: [train_from, train_until) gap [cutoff, test_until)."""

    train_from_ms: int
    train_until_ms: int
    cutoff_ms: int
    test_until_ms: int

    @classmethod
    def out_of_time(
        cls,
        first_ms: int,
        last_ms: int,
        *,
        warmup_days: float,
        gap_days: float,
        test_days: float,
    ) -> Split:
        """Periods on UTC day boundaries of data whose event times span [first, last]."""
        start = first_ms // DAY_MS * DAY_MS
        end = (last_ms // DAY_MS + 1) * DAY_MS
        split = cls(
            train_from_ms=start + int(warmup_days * DAY_MS),
            train_until_ms=end - int((test_days + gap_days) * DAY_MS),
            cutoff_ms=end - int(test_days * DAY_MS),
            test_until_ms=end,
        )
        if split.train_until_ms - split.train_from_ms < DAY_MS or test_days <= 0:
            days = (end - start) / DAY_MS
            raise TrainingError(
                f"the data covers {days:.0f} days, too few for {warmup_days} warm-up, at least "
                f"1 training, {gap_days} gap and {test_days} test days: generate more days "
                "or shorten the periods"
            )
        return split


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    warmup_days: float = 28.0
    gap_days: float = 14.0
    test_days: float = 28.0
    calibration_share: float = 0.25  # of the training period's cards, held out to calibrate
    fraud_weight_share: float = 0.1  # fraud rows weigh as if they were this share
    max_iter: int = 200
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The test period: per transaction, the model's score, the rule and the truth."""

    scores: np.ndarray
    rule: np.ndarray  # 0/1: did the velocity rule fire
    labels: np.ndarray  # 1 = fraud, by every label in the data
    cards: np.ndarray
    event_time_ms: np.ndarray
    offsets: np.ndarray  # of the source records, to join back to the input
    outcomes: np.ndarray  # the policy's decision of each transaction (str)
    model: Metrics
    baseline: Metrics
    card_precision_bound: float  # what a perfect ranking reaches on this period


@dataclass(frozen=True, slots=True)
class TrainingRun:
    scorer: Scorer
    split: Split
    config: TrainingConfig
    counts: dict[str, int]
    evaluation: Evaluation


def train(
    table: FeatureTable,
    labels: LabelBook,
    config: TrainingConfig,
    *,
    version: str,
    policy: Policy,
) -> TrainingRun:
    """Fit on the training period with labels known at the cut-off; evaluate on the test."""
    split = Split.out_of_time(
        int(table.event_time_ms.min()),
        int(table.event_time_ms.max()),
        warmup_days=config.warmup_days,
        gap_days=config.gap_days,
        test_days=config.test_days,
    )
    t = table.event_time_ms
    in_train = (t >= split.train_from_ms) & (t < split.train_until_ms)
    y_train = labels.fraud(table.transaction_ids[in_train], split.cutoff_ms)
    calibrate = _held_out_cards(table.cards[in_train], config)
    model = _fit(table.x[in_train], y_train, calibrate, config)
    scorer = Scorer(model=model, version=version, feature_names=FEATURE_NAMES)
    in_test = t >= split.cutoff_ms
    evaluation = _evaluate(scorer, table, in_test, labels, policy)
    counts = {
        "input_rows": len(t),
        "rejected": table.rejected,
        "train_rows": int((~calibrate).sum()),
        "train_fraud_known_at_cutoff": int(y_train[~calibrate].sum()),
        "train_fraud_eventually": int(labels.fraud(table.transaction_ids[in_train]).sum()),
        "calibration_rows": int(calibrate.sum()),
        "calibration_fraud": int(y_train[calibrate].sum()),
        "test_rows": int(in_test.sum()),
        "test_fraud": int(evaluation.labels.sum()),
    }
    return TrainingRun(scorer, split, config, counts, evaluation)


def _held_out_cards(cards: np.ndarray, config: TrainingConfig) -> np.ndarray:
    """A seeded share of the cards (all their rows), stable across processes."""
    threshold = int(config.calibration_share * 10_000)
    salt = f"{config.seed}/".encode()
    return np.fromiter(
        (zlib.crc32(salt + card.encode()) % 10_000 < threshold for card in cards),
        dtype=bool,
        count=len(cards),
    )


def _fit(
    x: np.ndarray, y: np.ndarray, calibrate: np.ndarray, config: TrainingConfig
) -> CalibratedClassifierCV:
    fit_y, cal_y = y[~calibrate], y[calibrate]
    positives = int(fit_y.sum())
    if positives == 0 or int(cal_y.sum()) == 0 or positives == len(fit_y):
        raise TrainingError(
            f"the training period has {positives} fraud rows labelled by the cut-off "
            f"({int(cal_y.sum())} among the calibration cards): both classes are needed; "
            "generate more cards or days, or a higher fraud rate"
        )
    fraud_weight = (
        (config.fraud_weight_share / (1.0 - config.fraud_weight_share))
        * (len(fit_y) - positives)
        / positives
    )
    trees = HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=False,
        random_state=config.seed,
    )
    trees.fit(x[~calibrate], fit_y, sample_weight=np.where(fit_y == 1, fraud_weight, 1.0))
    calibrated = CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid")
    return calibrated.fit(x[calibrate], cal_y)


def _evaluate(
    scorer: Scorer, table: FeatureTable, in_test: np.ndarray, labels: LabelBook, policy: Policy
) -> Evaluation:
    y = labels.fraud(table.transaction_ids[in_test])
    if not 0 < int(y.sum()) < len(y):
        raise TrainingError("the test period needs both fraud and genuine transactions")
    vectors = [tuple(row) for row in table.x[in_test].tolist()]
    scores = np.asarray(scorer.score_batch(vectors))
    rule = np.asarray([velocity_rule(v, policy) for v in vectors], dtype=np.int64)
    outcomes = np.asarray(
        [decide(s, v, policy).outcome.value for s, v in zip(scores.tolist(), vectors, strict=True)]
    )
    cards, times = table.cards[in_test], table.event_time_ms[in_test]
    return Evaluation(
        scores=scores,
        rule=rule,
        labels=y,
        cards=cards,
        event_time_ms=times,
        offsets=table.offsets[in_test],
        outcomes=outcomes,
        model=evaluate(scores, y, cards, times),
        baseline=evaluate(rule.astype(np.float64), y, cards, times),
        card_precision_bound=card_precision_bound(y, cards, times),
    )
