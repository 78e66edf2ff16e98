"""The scorer: a fitted classifier, its version and the feature names it was trained on.

:meth:`Scorer.score_batch` scores a whole batch at once. A row's score must not depend on the
batch it arrives in: crash recovery replays records in different batches, and the decisions
must come out byte-identical. Boosted trees (the default model, and the trained artefacts)
are compiled by :mod:`models.trees` into an evaluator that repeats scikit-learn's arithmetic
row by row, so it gives ``predict_proba``'s bits, in any batch, at a fraction of its cost.
Any other model is scored with one ``predict_proba`` call per batch: tree ensembles give
batch-independent bits there too (each row's trees are summed in the same order whatever the
batch), but models whose predictions go through BLAS matrix products (linear models, neural
nets) may not. The unit tests check the default model bit for bit.

:meth:`Scorer.contributions` says which features pushed a score up, for the reason codes
(:func:`models.policy.model_reasons`); only compiled models can say.

A scorer made from a fitted model compiles it (:mod:`models.tree_reader`, which imports
scikit-learn). One loaded from an artefact's saved trees (:func:`models.artefact.load_artefact`)
has only the compiled form, ``model`` is None, and scikit-learn is never imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.card import FeatureVector
from models.trees import CompiledModel


@dataclass(frozen=True, slots=True)
class Scorer:
    # a fitted scikit-learn binary classifier with predict_proba (untyped library), or None
    # when only its compiled trees were loaded
    model: Any
    version: str
    feature_names: tuple[str, ...]
    trees: CompiledModel | None = field(default=None, repr=False, compare=False)
    _fraud_column: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model is None:
            if self.trees is None:
                raise ValueError(f"model {self.version!r}: neither a model nor compiled trees")
            n_features, classes = self.trees.n_features, [0, 1]
        else:
            from models.tree_reader import compile_model  # noqa: PLC0415 - scikit-learn, ~3 s

            classes = [int(label) for label in self.model.classes_]
            n_features = int(self.model.n_features_in_)
            object.__setattr__(self, "trees", compile_model(self.model))
        if sorted(classes) != [0, 1]:
            raise ValueError(f"model {self.version!r} must have classes 0 and 1, not {classes}")
        if n_features != len(self.feature_names):
            raise ValueError(
                f"model {self.version!r} takes {n_features} features, "
                f"but {len(self.feature_names)} names were given"
            )
        object.__setattr__(self, "_fraud_column", classes.index(1))

    @property
    def compiled(self) -> bool:
        """Whether scores come from the compiled trees rather than ``predict_proba``."""
        return self.trees is not None

    def score_batch(self, vectors: Sequence[FeatureVector]) -> list[float]:
        """The probability of fraud of each vector, in order (one model call for the batch)."""
        if not vectors:
            return []
        self._check_width(vectors)
        if self.trees is not None:
            return self.trees.proba(vectors)
        proba = self.model.predict_proba(np.asarray(vectors, dtype=np.float64))
        return [float(p) for p in proba[:, self._fraud_column]]

    def contributions(self, vectors: Sequence[FeatureVector]) -> list[FeatureVector] | None:
        """Per vector, how far each feature pushed its score towards fraud (> 0) or away
        (< 0), in log-odds (:mod:`models.trees`); None if the model is not compiled."""
        if self.trees is None:
            return None
        if not vectors:
            return []
        self._check_width(vectors)
        return self.trees.contributions(vectors)

    def score(self, vector: FeatureVector) -> float:
        """The probability of fraud of one vector: the same bits as inside any batch."""
        return self.score_batch([vector])[0]

    def _check_width(self, vectors: Sequence[FeatureVector]) -> None:
        width = len(self.feature_names)
        if any(len(vector) != width for vector in vectors):
            raise ValueError(f"expected vectors of {width} features")
