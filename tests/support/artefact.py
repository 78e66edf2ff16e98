"""Small, real model artefacts for the registry tests: gradient-boosted trees (the type
``fraudscore train`` writes) fitted in well under a second on generated traffic, saved with
:func:`models.artefact.save_artefact`. Models with different numbers of trees give different
scores."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from features.schema import FEATURE_NAMES
from models.artefact import save_artefact
from models.default import TRAINING_CARDS, TRAINING_EVENTS_PER_SECOND, featurize
from models.scorer import Scorer
from models.synthetic import generate


@lru_cache(maxsize=1)
def _training_data() -> tuple[np.ndarray, np.ndarray]:
    items = generate(
        2000, cards=TRAINING_CARDS, seed=5, events_per_second=TRAINING_EVENTS_PER_SECOND,
        fraud_rate=0.05,
    )  # fmt: skip
    vectors, labels = featurize(items)
    return np.asarray(vectors, dtype=np.float64), np.asarray(labels)


def make_artefact(directory: Path, version: str, trees: int) -> Path:
    """Fit model ``version`` with ``trees`` boosting iterations; its artefact directory."""
    x, y = _training_data()
    model = HistGradientBoostingClassifier(max_iter=trees, random_state=0).fit(x, y)
    scorer = Scorer(model=model, version=version, feature_names=FEATURE_NAMES)
    metrics = {"model": {"auc_roc": 0.9, "average_precision": trees / 100}}
    save_artefact(directory, scorer, {"metrics": metrics})
    return directory
