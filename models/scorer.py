"""The scorer: a fitted classifier, its version and the feature names it was trained on.

:meth:`Scorer.score_batch` scores a whole batch with one ``predict_proba`` call. A row's score
must not depend on the batch it arrives in: crash recovery replays records in different
batches, and the decisions must come out byte-identical. Tree ensembles (the default
gradient-boosted trees) give that: each row's trees are summed in the same order whatever
the batch. Models whose predictions go through BLAS matrix products (linear models, neural
nets) may not; the unit tests check the default model bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.card import FeatureVector


@dataclass(frozen=True, slots=True)
class Scorer:
    model: Any  # a fitted scikit-learn binary classifier with predict_proba (untyped library)
    version: str
    feature_names: tuple[str, ...]
    _fraud_column: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        classes = [int(label) for label in self.model.classes_]
        if sorted(classes) != [0, 1]:
            raise ValueError(f"model {self.version!r} must have classes 0 and 1, not {classes}")
        n_features = int(self.model.n_features_in_)
        if n_features != len(self.feature_names):
            raise ValueError(
                f"model {self.version!r} takes {n_features} features, "
                f"but {len(self.feature_names)} names were given"
            )
        object.__setattr__(self, "_fraud_column", classes.index(1))

    def score_batch(self, vectors: Sequence[FeatureVector]) -> list[float]:
        """The probability of fraud of each vector, in order (one model call for the batch)."""
        if not vectors:
            return []
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"expected vectors of {len(self.feature_names)} features")
        proba = self.model.predict_proba(x)[:, self._fraud_column]
        return [float(p) for p in proba]

    def score(self, vector: FeatureVector) -> float:
        """The probability of fraud of one vector: the same bits as inside any batch."""
        return self.score_batch([vector])[0]
