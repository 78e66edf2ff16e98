"""Reading scikit-learn's fitted boosted trees into :mod:`models.trees`' flat arrays.

Compiled: ``GradientBoostingClassifier`` (log loss, two classes, ``init`` the default prior
or ``"zero"``), ``HistGradientBoostingClassifier`` (log loss, two classes, numeric features
only), and ``CalibratedClassifierCV(method="sigmoid")`` over either. :func:`compile_model`
returns None for anything else, and the caller falls back to ``predict_proba``.

The only module of the scoring path that imports scikit-learn: training and loading a model
from its skops file need it, scoring a compiled model does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

from models.trees import CompiledModel, Forest, Tree


def compile_model(model: Any) -> CompiledModel | None:
    """The compiled form of a fitted binary ``model``, or None if it is of no supported kind."""
    if list(getattr(model, "classes_", ())) != [0, 1]:
        return None
    if isinstance(model, CalibratedClassifierCV):
        return _calibrated(model)
    compiled = _forest(model)
    if compiled is None:
        return None
    forest, float32 = compiled
    return CompiledModel((forest,), None, int(model.n_features_in_), float32)


def _calibrated(model: CalibratedClassifierCV) -> CompiledModel | None:
    forests, platt, kinds = [], [], set()
    for calibrated in model.calibrated_classifiers_:
        estimator = calibrated.estimator
        if isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
        compiled = _forest(estimator)
        if (
            compiled is None
            or calibrated.method != "sigmoid"
            or len(calibrated.calibrators) != 1
            or list(estimator.classes_) != [0, 1]
        ):
            return None
        sigmoid = calibrated.calibrators[0]
        forests.append(compiled[0])
        platt.append((float(sigmoid.a_), float(sigmoid.b_)))
        kinds.add(compiled[1])
    if len(kinds) != 1:
        return None
    return CompiledModel(tuple(forests), tuple(platt), int(model.n_features_in_), kinds.pop())


def _forest(model: Any) -> tuple[Forest, bool] | None:
    """(forest, whether features are rounded to float32) of a supported boosted model."""
    binary = getattr(model, "n_trees_per_iteration_", 0) == 1 and model.loss == "log_loss"
    forest = None
    if isinstance(model, GradientBoostingClassifier) and binary:
        forest = _gradient_boosting(model)
    elif isinstance(model, HistGradientBoostingClassifier) and binary:
        forest = _hist_gradient_boosting(model)
    return None if forest is None else (forest, isinstance(model, GradientBoostingClassifier))


def _gradient_boosting(model: GradientBoostingClassifier) -> Forest | None:
    constant_init = model.init_ == "zero" or (
        isinstance(model.init_, DummyClassifier) and model.init_.strategy == "prior"
    )
    if not constant_init:
        return None
    # The raw prediction before the first tree is the same for every row (a class prior):
    # ask scikit-learn for it once, so that it has exactly its bits.
    start = float(model._raw_predict_init(np.zeros((1, model.n_features_in_)))[0, 0])
    trees = []
    for estimator in model.estimators_[:, 0]:
        tree = estimator.tree_
        trees.append(
            Tree(
                feature=tree.feature.astype(np.intp),
                threshold=tree.threshold,
                left=tree.children_left.astype(np.intp),
                right=tree.children_right.astype(np.intp),
                nan_left=np.zeros(tree.node_count, dtype=np.bool_),
                value=model.learning_rate * tree.value[:, 0, 0],  # as predict_stages scales
                weight=tree.weighted_n_node_samples,
            )
        )
    return Forest.of(trees, start)


def _hist_gradient_boosting(model: HistGradientBoostingClassifier) -> Forest | None:
    if model.is_categorical_ is not None and model.is_categorical_.any():
        return None
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            return None
        leaf = nodes["is_leaf"].astype(np.bool_)
        trees.append(
            Tree(
                feature=nodes["feature_idx"].astype(np.intp),
                threshold=nodes["num_threshold"],
                left=np.where(leaf, -1, nodes["left"].astype(np.intp)),
                right=np.where(leaf, -1, nodes["right"].astype(np.intp)),
                nan_left=nodes["missing_go_to_left"].astype(np.bool_),
                value=nodes["value"],
                weight=nodes["count"].astype(np.float64),
            )
        )
    # scikit-learn starts from zeros and adds the baseline first.
    return Forest.of(trees, 0.0 + float(model._baseline_prediction[0, 0]))
