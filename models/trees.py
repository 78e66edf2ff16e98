"""Boosted trees compiled to flat arrays: scikit-learn's probabilities without its per-call cost.

``predict_proba`` on a batch of ~100 rows spends most of its time validating the input and
calling into each tree in turn. :func:`compile_model` reads a fitted binary model once into
flat numpy arrays over all nodes of all trees, and :meth:`CompiledModel.proba` evaluates a
batch with a few numpy operations over all its rows and trees at once:

1. each tree's leaf: every (row, tree) starts at the tree's root and takes one step per
   level of the deepest tree: gather the feature and threshold its node tests, compare
   (``x <= threshold`` goes left, as in scikit-learn; NaN goes where the node says for
   ``HistGradientBoostingClassifier`` and is refused for ``GradientBoostingClassifier``,
   whose ``predict_proba`` refuses it too), move to that child (a leaf is its own child);
2. the raw score: the leaf values added row by row *in tree order*, starting from the
   model's initial raw prediction (``np.add.accumulate``, which adds one after the other;
   ``np.sum`` would add pairwise and round differently);
3. the probability: the logistic function per row, ``1 / (1 + exp(-raw))`` with
   :func:`math.exp`, as scipy's ``expit`` computes it; and for a sigmoid-calibrated model
   Platt's ``expit(-(a * raw + b))``, averaged over the calibrated members like
   ``CalibratedClassifierCV`` does.

Every step repeats scikit-learn's floating-point operations in scikit-learn's order: the same
rounding of the features to float32 for ``GradientBoostingClassifier``, the same products
``learning_rate * leaf value``, the same sequence of additions. So the probabilities come out
as the same bits as ``predict_proba`` (the unit tests check thousands of rows for equality,
and the benchmark re-checks on every run). Every operation is per row, so a row's
probability never depends on the other rows of its batch.

Compiled: ``GradientBoostingClassifier`` (log loss, two classes, ``init`` the default prior
or ``"zero"``), ``HistGradientBoostingClassifier`` (log loss, two classes, numeric features
only), and ``CalibratedClassifierCV(method="sigmoid")`` over either. :func:`compile_model`
returns None for anything else, and the caller falls back to ``predict_proba``.

:meth:`CompiledModel.contributions` explains a score: per feature, how far it moved the raw
score (log-odds) along each row's path through the trees. Every node has an *expected*
value, the training-weighted mean of its subtree's leaf values; each step from a node to
its child adds ``expected[child] - expected[node]`` to the feature the node splits on
(Saabas' path attribution). The contributions add up to the raw score minus the model's
mean raw score; a positive one pushed the score towards fraud (for a calibrated model the
contributions are scaled by Platt's slope, so the sign keeps that meaning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, pairwise
from math import exp
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator

Rows = Sequence[Sequence[float]]
Floats = NDArray[np.float64]
Indexes = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Tree:
    """One fitted tree in scikit-learn's node numbering (``left[node] < 0``: a leaf)."""

    feature: Indexes
    threshold: Floats
    left: Indexes
    right: Indexes
    nan_left: NDArray[np.bool_]  # where a NaN goes left (HistGradientBoosting only)
    value: Floats  # what each leaf adds to the raw score
    weight: Floats  # training weight (or count) of each node


@dataclass(frozen=True, slots=True)
class Forest:
    """The trees of one ensemble as flat arrays over all their nodes, tree after tree."""

    feature: Indexes  # the split feature of each node (0 for a leaf)
    threshold: Floats  # x <= threshold goes left (+inf for a leaf)
    nan_left: NDArray[np.bool_] | None  # None: no node sends NaN left
    children: Indexes  # children[2 * node + goes_right]; a leaf is its own child
    leaf_value: Floats  # what each leaf adds; the first tree's leaves include the start
    expected: Floats  # expected leaf value of each node's subtree, for contributions
    roots: Indexes
    depth: int  # of the deepest tree

    @classmethod
    def of(cls, trees: Sequence[Tree], start: float) -> Forest:
        """``start`` is the raw score before the first tree, folded into its leaf values
        by the same addition scikit-learn makes first."""
        sizes = [len(tree.feature) for tree in trees]
        offsets = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        children, leaf_values, expected, depths = [], [], [], []
        for tree, offset in zip(trees, offsets, strict=True):
            own = np.arange(len(tree.feature), dtype=np.intp)
            leaf = tree.left < 0
            left = np.where(leaf, own, tree.left) + offset
            right = np.where(leaf, own, tree.right) + offset
            children.append(np.stack([left, right], axis=1).ravel())
            values = np.where(leaf, tree.value, 0.0)
            leaf_values.append(values + start if offset == 0 else values)
            tree_expected, depth = _expected(tree)
            expected.append(tree_expected)
            depths.append(depth)
        leaves = np.concatenate([tree.left < 0 for tree in trees])
        nan_left = np.concatenate([tree.nan_left for tree in trees]) & ~leaves
        return cls(
            feature=np.where(leaves, 0, np.concatenate([t.feature for t in trees])),
            threshold=np.where(leaves, np.inf, np.concatenate([t.threshold for t in trees])),
            nan_left=nan_left if nan_left.any() else None,
            children=np.concatenate(children),
            leaf_value=np.concatenate(leaf_values),
            expected=np.concatenate(expected),
            roots=offsets,
            depth=max(depths),
        )

    def paths(self, x: Floats) -> list[Indexes]:
        """Node of every (row, tree) at each level: roots first, leaves last."""
        n, width = x.shape
        flat = x.ravel()
        row_start = np.arange(0, n * width, width, dtype=np.intp)[:, np.newaxis]
        path = [np.tile(self.roots, (n, 1))]
        for _ in range(self.depth):
            node = path[-1]
            tested = flat[row_start + self.feature[node]]
            goes_left = tested <= self.threshold[node]
            if self.nan_left is not None:
                goes_left |= np.isnan(tested) & self.nan_left[node]
            path.append(self.children[2 * node + ~goes_left])
        return path

    def raw(self, x: Floats) -> Floats:
        """Each row's raw score: its leaf values added one after the other, tree by tree."""
        return np.add.accumulate(self.leaf_value[self.paths(x)[-1]], axis=1)[:, -1]

    def contributions(self, x: Floats) -> Floats:
        """(rows, features): each feature's share of the raw score along the rows' paths."""
        n, width = x.shape
        row_start = np.arange(0, n * width, width, dtype=np.intp)[:, np.newaxis]
        total = np.zeros(n * width)
        path = self.paths(x)
        for node, child in pairwise(path):
            moved = self.expected[child] - self.expected[node]  # 0 once at a leaf
            bins = row_start + self.feature[node]
            total += np.bincount(bins.ravel(), weights=moved.ravel(), minlength=n * width)
        return total.reshape(n, width)


def _expected(tree: Tree) -> tuple[Floats, int]:
    """Each node's training-weighted mean leaf value below it, and the tree's depth."""
    order, depth_of, depth = [0], {0: 0}, 0
    for node in order:  # grows while it is walked: every node once, parents first
        if tree.left[node] >= 0:
            for child in (int(tree.left[node]), int(tree.right[node])):
                depth_of[child] = depth_of[node] + 1
                depth = max(depth, depth_of[child])
                order.append(child)
    expected = np.where(tree.left < 0, tree.value, 0.0)
    for node in reversed(order):
        if tree.left[node] >= 0:
            left, right = tree.left[node], tree.right[node]
            weights = tree.weight[left], tree.weight[right]
            if weights[0] + weights[1] <= 0:
                weights = 1.0, 1.0
            expected[node] = (weights[0] * expected[left] + weights[1] * expected[right]) / (
                weights[0] + weights[1]
            )
    return expected, depth


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A binary classifier's probability of class 1, as :func:`compile_model` made it."""

    forests: tuple[Forest, ...]  # one, or one per member of a calibrated model
    platt: tuple[tuple[float, float], ...] | None  # each member's sigmoid (a, b), if calibrated
    n_features: int
    float32: bool  # features rounded to float32 and refused unless finite (gradient boosting)

    def proba(self, rows: Rows) -> list[float]:
        """The probability of class 1 of each row (rows of ``n_features`` numbers)."""
        x = self._inputs(rows)
        if self.platt is None:
            (forest,) = self.forests
            return [1.0 / (1.0 + exp(-raw)) for raw in forest.raw(x).tolist()]
        total = [0.0] * len(rows)  # CalibratedClassifierCV adds its members' up from zeros
        for forest, (a, b) in zip(self.forests, self.platt, strict=True):
            for i, raw in enumerate(forest.raw(x).tolist()):
                total[i] += 1.0 / (1.0 + exp(a * raw + b))  # expit(-(a * raw + b))
        return [p / len(self.forests) for p in total]

    def contributions(self, rows: Rows) -> list[tuple[float, ...]]:
        """Per row, each feature's push on the score (log-odds; > 0: towards class 1)."""
        x = self._inputs(rows)
        slopes = [1.0] if self.platt is None else [-a for a, _ in self.platt]
        total = np.zeros(x.shape)
        for forest, slope in zip(self.forests, slopes, strict=True):
            total += slope * forest.contributions(x)
        return [tuple(row) for row in (total / len(self.forests)).tolist()]

    def _inputs(self, rows: Rows) -> Floats:
        count = len(rows) * self.n_features
        if not self.float32:
            x = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=count)
            return x.reshape(len(rows), self.n_features)
        with np.errstate(over="ignore"):  # beyond float32's range: inf, refused just below
            x32 = np.fromiter(chain.from_iterable(rows), dtype=np.float32, count=count)
        if not np.isfinite(x32).all():
            raise ValueError(
                "features must be finite and within float32's range "
                "(gradient-boosted trees refuse NaN and infinity)"
            )
        return x32.astype(np.float64).reshape(len(rows), self.n_features)


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
