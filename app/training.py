"""``fraudscore train``: a dataset directory in, a model artefact and its report out.

Reads the Parquet dataset (:mod:`sinks.parquet`), builds the feature table with the worker's
own feature step, trains and evaluates out of time (:mod:`models.training`), and writes the
run's directory: ``model.skops`` and ``metadata.json`` (:mod:`models.artefact`), and the
report with its plots (:mod:`app.report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.report import write_report
from features.merchant import LabelSnapshots, MerchantRiskParams
from models.artefact import save_artefact
from models.policy import Policy
from models.training import LabelBook, Split, TrainingConfig, TrainingRun, build_features, train
from sinks.parquet import count_records, read_labels, read_records, read_scenarios

Progress = Callable[[str, int, int], None]  # (stage, completed, total)


@dataclass(frozen=True, slots=True)
class TrainResult:
    directory: Path
    run: TrainingRun
    report: Path


def train_from_dataset(
    data: Path,
    runs: Path,
    config: TrainingConfig,
    *,
    policy: Policy,
    max_record_bytes: int,
    merchant_params: MerchantRiskParams,
    version: str | None = None,
    on_progress: Progress | None = None,
) -> TrainResult:
    """Train on the dataset in ``data``; write the artefact and report to ``runs/<version>``."""
    started = time.monotonic()
    created = datetime.now(UTC)
    version = version or f"gbt-{created:%Y%m%dT%H%M%SZ}"
    total = count_records(data)
    done = 0

    def featurized(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress("featurizing", done, total)

    labels = read_labels(data)
    table = build_features(
        read_records(data),
        max_record_bytes=max_record_bytes,
        merchants=LabelSnapshots((label.fact() for label in labels), merchant_params),
        on_progress=featurized,
    )
    if on_progress is not None:
        on_progress("fitting", 0, 1)
    run = train(table, LabelBook(labels), config, version=version, policy=policy)
    directory = runs / version
    facts = _training_facts(data, run, policy, created, time.monotonic() - started)
    save_artefact(directory, run.scorer, facts)
    report = write_report(directory, run, read_scenarios(data), policy, f"Training run {version}")
    return TrainResult(directory, run, report)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _split_facts(split: Split) -> dict[str, str]:
    return {
        "train_from": _iso(split.train_from_ms),
        "train_until": _iso(split.train_until_ms),
        "label_cutoff": _iso(split.cutoff_ms),
        "test_from": _iso(split.cutoff_ms),
        "test_until": _iso(split.test_until_ms),
    }


def _training_facts(
    data: Path, run: TrainingRun, policy: Policy, created: datetime, elapsed_s: float
) -> dict[str, Any]:
    e = run.evaluation
    return {
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "data": str(data),
        "data_range": _split_facts(run.split),
        "rows": run.counts,
        "config": asdict(run.config),
        "policy": {"review": policy.review_threshold, "decline": policy.decline_threshold},
        "metrics": {
            "model": e.model.as_dict(),
            "velocity_rule": e.baseline.as_dict(),
            "card_precision_top100_bound": e.card_precision_bound,
        },
        "elapsed_s": round(elapsed_s, 1),
    }
