"""CPU cost per transaction of scoring and deciding, at the worker's batch sizes (issue #5).

Run: ``.venv/bin/python -m app.bench.scoring [--events 20000] [--repeats 5] [--model default]``

The model is the default one (:func:`models.default.train_default_model`, trained here), or
with ``--model hist`` a ``HistGradientBoostingClassifier`` (200 iterations of up to 31 leaves)
under a sigmoid ``CalibratedClassifierCV``, the shape ``fraudscore train`` builds, fitted here
on generated traffic only to have its size (its quality does not matter). The traffic is
:func:`models.synthetic.generate` (``--events``, 50,000 cards, seeded), decoded and
featurized in arrival order before any timing, as the worker would; the events are then cut
into consecutive batches of 1, 10, 100 and 1000. Timed, per batch:

- (a) ``predict_proba`` per row: one call per transaction, whatever the batch;
- (b) ``predict_proba`` per batch: one call per batch;
- (c) the compiled trees: :meth:`models.scorer.Scorer.score_batch` (:mod:`models.trees`);
- (d) policy + reason codes: :func:`models.policy.decide` per transaction, then the model's
  reason codes for the flagged ones (``Pipeline._reasons``: one contributions call);
- (e) (d) and the decision records built (``Pipeline._decisions``, what the worker runs);
- (f) their JSON encoding (:func:`models.pipeline.encode_decision`, run by the checkpoint).

A ``predict_proba`` call costs around a millisecond, so (a) and (b) run over the first
``--sklearn-events`` transactions only; everything else over all of them. Before timing the
script checks that (c) is within 1e-9 of ``predict_proba`` for every transaction (and says
whether it is the same bits), and that every batch size gives the same bits, as crash
recovery needs; it stops if not. Repeats are interleaved (every
variant and batch size once, then again) so that a change in machine load hits all alike;
reported: best and median microseconds per transaction of process CPU time
(``time.process_time``: other processes on the shared machine do not count, but they still
slow this one through shared caches and cores), and ratios of medians.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from app.bench._common import host_info
from app.bench.features import transactions
from features.card import CardState, FeatureVector, observe
from features.merchant import NO_RISK
from features.schema import FEATURE_NAMES
from models.default import featurize, train_default_model
from models.pipeline import Featurized, Pipeline, SourceRecord, encode_decision
from models.policy import Policy, decide
from models.scorer import Scorer
from models.synthetic import DEFAULT_CARDS, generate

BATCH_SIZES = (1, 10, 100, 1000)
Accepted = list[Featurized]
STEPS = {
    "a": "(a) predict_proba per row",
    "b": "(b) predict_proba per batch",
    "c": "(c) compiled trees",
    "d": "(d) policy + reason codes",
    "e": "(e) (d) + decision records",
    "f": "(f) JSON encoding of the records",
}
TOTALS = {"model + policy + reason codes: (c) + (d)": "cd", "everything: (c) + (e) + (f)": "cef"}


def traffic(events: int, seed: int) -> Accepted:
    """Generated transactions with their feature vectors, as the worker's pipeline has them."""
    states: dict[str, CardState] = {}
    accepted: Accepted = []
    for offset, txn in enumerate(transactions(events, DEFAULT_CARDS, seed)):
        state, vector = observe(states.get(txn.card_id), txn)
        states[txn.card_id] = state
        record = SourceRecord("transactions", 0, offset, txn.card_id.encode(), b"")
        accepted.append(Featurized(record, txn, (*vector, *NO_RISK), False, None))
    return accepted


def hist_model(seed: int) -> Scorer:
    """A model of the size ``fraudscore train`` makes (its quality is beside the point)."""
    vectors, labels = featurize(generate(20_000, cards=10_000, seed=seed, fraud_rate=0.05))
    x, y = np.asarray(vectors), np.asarray(labels)
    trees = HistGradientBoostingClassifier(
        max_iter=200, max_leaf_nodes=31, early_stopping=False, random_state=seed
    ).fit(x[:15_000], y[:15_000])
    model = CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid")
    model.fit(x[15_000:], y[15_000:])
    return Scorer(model=model, version="hist-bench", feature_names=FEATURE_NAMES)


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def check_scores(scorer: Scorer, vectors: list[FeatureVector]) -> str:
    """How the compiled scores compare with predict_proba; exits if a row's score depends on
    its batch or differs from predict_proba by more than 1e-9."""
    expected = scorer.model.predict_proba(np.asarray(vectors))[:, 1]
    whole = np.asarray(scorer.score_batch(vectors))
    for size in BATCH_SIZES:
        got = np.asarray([s for part in batches(vectors, size) for s in scorer.score_batch(part)])
        if got.tobytes() != whole.tobytes():
            sys.exit(f"compiled scores in batches of {size} differ from the whole batch's")
    difference = float(np.max(np.abs(whole - expected)))
    if difference > 1e-9:
        sys.exit(f"compiled scores differ from predict_proba by up to {difference:g}")
    same = "the same bits as" if whole.tobytes() == expected.tobytes() else "within 1e-9 of"
    return f"compiled scores: {same} predict_proba, and the same bits in every batch size"


def workloads(
    pipeline: Pipeline, accepted: Accepted, sklearn_events: int, size: int
) -> dict[str, tuple[Callable[[], object], int]]:
    """Per step, (one pass over the traffic in batches of ``size``, transactions in it)."""
    model, scorer = pipeline.scorer.model, pipeline.scorer
    vectors = [f.vector for f in accepted]
    scores = scorer.score_batch(vectors)  # the same bits in any batch (checked)
    parts = batches(accepted, size)
    scored = list(zip(parts, batches(scores, size), strict=True))
    rows = [np.asarray(part) for part in batches(vectors[:sklearn_events], size)]
    records = [[d for _, d in pipeline._decisions(list(p), list(s))] for p, s in scored]

    def policy_and_reasons() -> None:
        for part, part_scores in scored:
            part_vectors = [f.vector for f in part]
            decisions = [
                decide(s, v, pipeline.policy)
                for s, v in zip(part_scores, part_vectors, strict=True)
            ]
            pipeline._reasons(part_vectors, decisions)

    return {
        "b": (lambda: [model.predict_proba(x) for x in rows], sklearn_events),
        "c": (lambda: [scorer.score_batch(part) for part in batches(vectors, size)], len(vectors)),
        "d": (policy_and_reasons, len(vectors)),
        "e": (
            lambda: [list(pipeline._decisions(list(p), list(s))) for p, s in scored],
            len(vectors),
        ),
        "f": (lambda: [encode_decision(d) for part in records for d in part], len(vectors)),
    }


def cpu_us_per_event(work: Callable[[], object], events: int) -> float:
    gc.collect()
    start = time.process_time()
    work()
    return (time.process_time() - start) / events * 1e6


def measure(
    pipeline: Pipeline, accepted: Accepted, sklearn_events: int, repeats: int
) -> dict[tuple[str, int], list[float]]:
    """(step, batch size) → µs per transaction of each repeat, interleaved."""
    rows = [np.asarray([f.vector]) for f in accepted[:sklearn_events]]
    model = pipeline.scorer.model
    per_size = {size: workloads(pipeline, accepted, sklearn_events, size) for size in BATCH_SIZES}
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        naive = cpu_us_per_event(lambda: [model.predict_proba(x) for x in rows], sklearn_events)
        for size in BATCH_SIZES:
            runs.setdefault(("a", size), []).append(naive)
            for step, (work, events) in per_size[size].items():
                runs.setdefault((step, size), []).append(cpu_us_per_event(work, events))
    return runs


def machine_info() -> list[str]:
    libs = ", ".join(f"{lib} {version(lib)}" for lib in ("numpy", "scikit-learn", "msgspec"))
    return [f"{key}: {value}" for key, value in host_info(libs)]


def report(runs: dict[tuple[str, int], list[float]]) -> None:
    def figures(steps: str, size: int) -> tuple[float, float]:
        """(sum of the bests, sum of the medians) of ``steps`` at ``size``."""
        best = sum(min(runs[step, size]) for step in steps)
        return best, sum(statistics.median(runs[step, size]) for step in steps)

    rows = [*((name, step) for step, name in STEPS.items()), *TOTALS.items()]
    header = " | ".join(f"batch {size}" for size in BATCH_SIZES)
    print(f"\nµs per transaction, best / median:\n\n| step | {header} |")
    print("|---|" + "---:|" * len(BATCH_SIZES))
    for name, steps in rows:
        cells = (figures(steps, size) for size in BATCH_SIZES)
        print(f"| {name} | " + " | ".join(f"{b:.2f} / {m:.2f}" for b, m in cells) + " |")
    print(f"\nratios of medians:\n\n| ratio | {header} |")
    print("|---|" + "---:|" * len(BATCH_SIZES))
    for num, den in (("a", "c"), ("b", "c")):
        ratios = (figures(num, size)[1] / figures(den, size)[1] for size in BATCH_SIZES)
        print(f"| ({num}) / ({den}) | " + " | ".join(f"{r:.1f}x" for r in ratios) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.bench.scoring", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--sklearn-events", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", choices=("default", "hist"), default="default")
    args = parser.parse_args(argv)
    print("\n".join(machine_info()))
    arguments = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: {os.path.relpath(sys.executable)} -m app.bench.scoring {arguments}".rstrip())
    scorer = train_default_model() if args.model == "default" else hist_model(args.seed)
    pipeline = Pipeline(scorer=scorer, policy=Policy(), max_record_bytes=8192)
    accepted = traffic(args.events, args.seed)
    vectors = [f.vector for f in accepted]
    agreement = check_scores(scorer, vectors)
    flagged = sum(
        decide(s, v, pipeline.policy).reasons != ()
        for s, v in zip(scorer.score_batch(vectors), vectors, strict=True)
    )
    print(
        f"model: {scorer.version} (compiled: {scorer.compiled}); {len(accepted)} transactions, "
        f"{flagged} flagged ({flagged / len(accepted):.1%}), seed {args.seed}; "
        f"(a) and (b) over the first {args.sklearn_events}; {args.repeats} interleaved repeats"
    )
    print(agreement)
    report(measure(pipeline, accepted, min(args.sklearn_events, len(accepted)), args.repeats))


if __name__ == "__main__":
    main()
