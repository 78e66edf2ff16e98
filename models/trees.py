"""Boosted trees compiled to flat arrays: scikit-learn's probabilities without its per-call cost.

``predict_proba`` on a batch of ~100 rows spends most of its time validating the input and
calling into each tree in turn. :func:`models.tree_reader.compile_model` reads a fitted binary
model once into the flat numpy arrays of this module, over all nodes of all trees, and
:meth:`CompiledModel.proba` evaluates a batch with a few numpy operations over all its rows
and trees at once:

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

:meth:`CompiledModel.contributions` explains a score: per feature, how far it moved the raw
score (log-odds) along each row's path through the trees. Every node has an *expected*
value, the training-weighted mean of its subtree's leaf values; each step from a node to
its child adds ``expected[child] - expected[node]`` to the feature the node splits on
(Saabas' path attribution). The contributions add up to the raw score minus the model's
mean raw score; a positive one pushed the score towards fraud (for a calibrated model the
contributions are scaled by Platt's slope, so the sign keeps that meaning).

:meth:`CompiledModel.save` writes the arrays to an uncompressed ``.npz`` file and
:meth:`CompiledModel.load` reads them back with ``allow_pickle=False``: plain numbers, the
same bits, no code. This module needs numpy only, so a worker that loads a saved model never
imports scikit-learn (about 3 s of a worker's start).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, pairwise
from math import exp
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np
from numpy.typing import NDArray

Rows = Sequence[Sequence[float]]
Floats = NDArray[np.float64]
Indexes = NDArray[np.intp]


_SAVED_FORMAT = 1
_SLICE_ROWS = 4096  # rows evaluated at once (worker batches are smaller)
_FOREST_ARRAYS = ("feature", "threshold", "children", "leaf_value", "expected", "roots")


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

    def paths(self, x: Floats) -> Iterator[Indexes]:
        """Node of every (row, tree) at each level, one level at a time: roots first, leaves
        last."""
        n, width = x.shape
        flat = x.ravel()
        row_start = np.arange(0, n * width, width, dtype=np.intp)[:, np.newaxis]
        node = np.tile(self.roots, (n, 1))
        yield node
        for _ in range(self.depth):
            tested = flat[row_start + self.feature[node]]
            goes_left = tested <= self.threshold[node]
            if self.nan_left is not None:
                goes_left |= np.isnan(tested) & self.nan_left[node]
            node = self.children[2 * node + ~goes_left]
            yield node

    def raw(self, x: Floats) -> Floats:
        """Each row's raw score: its leaf values added one after the other, tree by tree."""
        return _in_slices(x, self._raw)

    def _raw(self, x: Floats) -> Floats:
        leaves = deque(self.paths(x), maxlen=1)[0]
        return np.add.accumulate(self.leaf_value[leaves], axis=1)[:, -1]

    def contributions(self, x: Floats) -> Floats:
        """(rows, features): each feature's share of the raw score along the rows' paths."""
        return _in_slices(x, self._contributions)

    def _contributions(self, x: Floats) -> Floats:
        n, width = x.shape
        row_start = np.arange(0, n * width, width, dtype=np.intp)[:, np.newaxis]
        total = np.zeros(n * width)
        for node, child in pairwise(self.paths(x)):
            moved = self.expected[child] - self.expected[node]  # 0 once at a leaf
            bins = row_start + self.feature[node]
            total += np.bincount(bins.ravel(), weights=moved.ravel(), minlength=n * width)
        return total.reshape(n, width)


def _in_slices(x: Floats, compute: Callable[[Floats], Floats]) -> Floats:
    """``compute`` over slices of at most :data:`_SLICE_ROWS` rows of ``x``, joined. Every
    operation is per row, so the result has the same bits; but each level's (rows, trees)
    node array stays small (scoring a whole test period of 473,073 rows at once with 200
    trees, peaked at 17 GB)."""
    if len(x) <= _SLICE_ROWS:
        return compute(x)
    return np.concatenate([compute(x[i : i + _SLICE_ROWS]) for i in range(0, len(x), _SLICE_ROWS)])


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
    """A binary classifier's probability of class 1, as :func:`~models.tree_reader.compile_model`
    made it."""

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

    def save(self, path: Path) -> None:
        """Write the arrays to ``path`` (an uncompressed ``.npz``), for :meth:`load`."""
        arrays: dict[str, Any] = {  # numpy arrays (Any: savez types its keywords as bool)
            "format": np.array(_SAVED_FORMAT),
            "n_features": np.array(self.n_features),
            "float32": np.array(self.float32),
            "depth": np.array([forest.depth for forest in self.forests], dtype=np.intp),
        }
        if self.platt is not None:
            arrays["platt"] = np.array(self.platt, dtype=np.float64)
        for i, forest in enumerate(self.forests):
            for name in _FOREST_ARRAYS:
                arrays[f"{i}.{name}"] = getattr(forest, name)
            if forest.nan_left is not None:
                arrays[f"{i}.nan_left"] = forest.nan_left
        with path.open("wb") as file:  # a file object: numpy adds no ".npz" to the name
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        """The model :meth:`save` wrote to ``path``; ValueError if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if int(saved["format"]) != _SAVED_FORMAT:
                    raise ValueError(f"saved trees format {int(saved['format'])}")
                forests = tuple(
                    Forest(
                        **{name: saved[f"{i}.{name}"] for name in _FOREST_ARRAYS},
                        nan_left=saved.get(f"{i}.nan_left"),
                        depth=depth,
                    )
                    for i, depth in enumerate(saved["depth"].tolist())
                )
                platt = (
                    tuple((a, b) for a, b in saved["platt"].tolist()) if "platt" in saved else None
                )
                return cls(forests, platt, int(saved["n_features"]), bool(saved["float32"]))
        except (KeyError, OSError, EOFError, TypeError, BadZipFile) as exc:
            raise ValueError(f"{path} holds no saved trees ({exc})") from exc

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
