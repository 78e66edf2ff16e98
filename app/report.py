"""The evaluation report of a training run: Markdown with PNG plots, for people.

:func:`write_report` writes ``report.md`` next to ``pr_curve.png`` (precision-recall of the
model, with the rule as a point), ``scores.png`` (score distributions by class) and
``confusion.png`` (the policy's decisions against the truth) into the run's directory. The
figures are of the out-of-time test period (:mod:`models.training`).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from models.evaluation import Metrics
from models.policy import Outcome, Policy
from models.training import Evaluation, TrainingRun

PR_CURVE, SCORES, CONFUSION = "pr_curve.png", "scores.png", "confusion.png"
_OUTCOMES = tuple(outcome.value for outcome in Outcome)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def write_report(
    directory: Path, run: TrainingRun, scenarios: dict[int, str], policy: Policy, title: str
) -> Path:
    """Write the report and its plots for ``run``; ``scenarios`` maps offsets to scenarios."""
    evaluation = run.evaluation
    _pr_curve(directory / PR_CURVE, evaluation)
    _scores(directory / SCORES, evaluation, policy)
    _confusion(directory / CONFUSION, evaluation)
    path = directory / "report.md"
    path.write_text(_markdown(run, scenarios, policy, title))
    return path


def _markdown(run: TrainingRun, scenarios: dict[int, str], policy: Policy, title: str) -> str:
    e, split, counts = run.evaluation, run.split, run.counts
    lines = [
        f"# {title}",
        "",
        f"Model `{run.scorer.version}`: calibrated gradient-boosted trees "
        f"(scikit-learn HistGradientBoostingClassifier + sigmoid), seed {run.config.seed}.",
        "",
        "| period | from | until (exclusive) | rows | fraud |",
        "|---|---|---|---:|---:|",
        f"| training | {_day(split.train_from_ms)} | {_day(split.train_until_ms)} "
        f"| {counts['train_rows']:,} (+{counts['calibration_rows']:,} calibration) "
        f"| {counts['train_fraud_known_at_cutoff']:,} known at the cut-off "
        f"(+{counts['calibration_fraud']:,}; {counts['train_fraud_eventually']:,} eventually) |",
        f"| gap (label delay) | {_day(split.train_until_ms)} | {_day(split.cutoff_ms)} | | |",
        f"| test | {_day(split.cutoff_ms)} | {_day(split.test_until_ms)} "
        f"| {counts['test_rows']:,} | {counts['test_fraud']:,} |",
        "",
        "## Metrics on the test period",
        "",
        "| metric | model | rule: > 3 txns and > 1,000 in 60 s |",
        "|---|---:|---:|",
        *_metric_rows(e.model, e.baseline),
        "",
        f"A perfect ranking would reach a card precision of {e.card_precision_bound:.3f}: "
        "some days have fewer than 100 cards with fraud.",
        "",
        f"![precision-recall]({PR_CURVE})",
        "",
        f"## Decisions at the policy's thresholds (review {policy.review_threshold}, "
        f"decline {policy.decline_threshold}, plus the velocity rule)",
        "",
        "| decision | fraud | genuine |",
        "|---|---:|---:|",
        *_confusion_rows(e),
        "",
        f"![confusion]({CONFUSION})",
        "",
        "## Fraud flagged (REVIEW or DECLINE) by scenario",
        "",
        "| scenario | transactions | flagged by the policy | fired the rule |",
        "|---|---:|---:|---:|",
        *_scenario_rows(e, scenarios),
        "",
        f"![scores]({SCORES})",
        "",
    ]
    return "\n".join(lines)


def _metric_rows(model: Metrics, baseline: Metrics) -> list[str]:
    names = {
        "auc_roc": "AUC ROC",
        "average_precision": "average precision",
        "recall_at_1pct_fpr": "recall at 1 % false-positive rate",
        "card_precision_top100": "card precision, top 100 cards per day",
    }
    ours, theirs = model.as_dict(), baseline.as_dict()
    return [f"| {label} | {ours[key]:.4f} | {theirs[key]:.4f} |" for key, label in names.items()]


def _confusion_rows(e: Evaluation) -> list[str]:
    fraud = Counter(e.outcomes[e.labels == 1].tolist())
    genuine = Counter(e.outcomes[e.labels == 0].tolist())
    return [f"| {o} | {fraud[o]:,} | {genuine[o]:,} |" for o in _OUTCOMES]


def _scenario_rows(e: Evaluation, scenarios: dict[int, str]) -> list[str]:
    total: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    ruled: Counter[str] = Counter()
    for offset, outcome, rule in zip(e.offsets.tolist(), e.outcomes, e.rule, strict=True):
        scenario = scenarios.get(offset)
        if scenario is None:
            continue
        total[scenario] += 1
        flagged[scenario] += outcome != Outcome.APPROVE.value
        ruled[scenario] += int(rule)
    return [
        f"| {s} | {n:,} | {flagged[s] / n:.1%} | {ruled[s] / n:.1%} |"
        for s, n in sorted(total.items())
    ]


def _pr_curve(path: Path, e: Evaluation) -> None:
    precision, recall, _ = precision_recall_curve(e.labels, e.scores)
    rule_hits = e.rule == 1
    rule_precision = e.labels[rule_hits].mean() if rule_hits.any() else 0.0
    rule_recall = e.rule[e.labels == 1].mean()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(recall, precision, label=f"model (AP {e.model.average_precision:.3f})")
    ax.scatter([rule_recall], [rule_precision], color="C3", zorder=3, label="velocity rule")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall, test period")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    _save(fig, path)


def _scores(path: Path, e: Evaluation, policy: Policy) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(0.0, 1.0, 51).tolist()
    for label, name, color in ((0, "genuine", "C0"), (1, "fraud", "C3")):
        ax.hist(e.scores[e.labels == label], bins=bins, alpha=0.6, color=color, label=name)
    for threshold in (policy.review_threshold, policy.decline_threshold):
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.set(xlabel="score (calibrated probability of fraud)", ylabel="transactions (log)")
    ax.set_yscale("log")
    ax.set_title("Score distributions by class, test period")
    ax.legend()
    _save(fig, path)


def _confusion(path: Path, e: Evaluation) -> None:
    counts = np.asarray(
        [[int(((e.outcomes == o) & (e.labels == y)).sum()) for y in (1, 0)] for o in _OUTCOMES]
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    shares = counts / counts.sum(axis=0, keepdims=True)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), n in np.ndenumerate(counts):
        ax.text(col, row, f"{n:,}\n{shares[row, col]:.1%}", ha="center", va="center")
    ax.set_xticks([0, 1], ["fraud", "genuine"])
    ax.set_yticks(range(len(_OUTCOMES)), list(_OUTCOMES))
    ax.set_title("Policy decisions vs truth (share of column)")
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
