"""Compiled trees: predict_proba's bits for every supported model, in any batch, or no compile."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.tree import DecisionTreeClassifier

from features.card import FeatureVector
from features.schema import FEATURE_NAMES
from models.default import featurize, train_default_model
from models.synthetic import generate
from models.tree_reader import compile_model
from models.trees import CompiledModel

Rows = list[FeatureVector]


@pytest.fixture(scope="module")
def data() -> tuple[Rows, list[int]]:
    """Feature vectors as the worker computes them, and their labels."""
    return featurize(generate(6000, cards=1500, seed=31, fraud_rate=0.05))


@pytest.fixture(scope="module")
def default_model() -> Any:
    return train_default_model(seed=3, count=8000).model


@pytest.fixture(scope="module")
def hist_model(data: tuple[Rows, list[int]]) -> HistGradientBoostingClassifier:
    """Trained with missing values, so that its nodes send NaN both ways."""
    x, y = _with_nans(data[0][:4000]), data[1][:4000]
    return HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)


def _with_nans(rows: Rows, share: float = 0.1) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    x[np.random.default_rng(3).random(x.shape) < share] = np.nan
    return x


def _compiled(model: Any) -> CompiledModel:
    compiled = compile_model(model)
    assert compiled is not None
    return compiled


def _expected(model: Any, rows: Rows | np.ndarray) -> list[float]:
    return [float(p) for p in model.predict_proba(np.asarray(rows, dtype=np.float64))[:, 1]]


def _bits(scores: list[float]) -> bytes:
    return np.asarray(scores, dtype=np.float64).tobytes()


def _assert_same_bits_in_any_batch(compiled: CompiledModel, rows: Rows) -> None:
    whole = _bits(compiled.proba(rows))
    for size in (1, 7, 100):
        parts = [p for i in range(0, len(rows), size) for p in compiled.proba(rows[i : i + size])]
        assert _bits(parts) == whole, f"batch size {size}"


def _ties(model: GradientBoostingClassifier, base: FeatureVector) -> Rows:
    """``base`` with one feature at, just below and just above a split threshold, for a
    sample of the model's splits (float64 and float32 neighbours: the features are rounded
    to float32 before the comparison)."""
    splits = sorted(
        {
            (int(f), float(t))
            for estimator in model.estimators_[:, 0]
            for f, t in zip(estimator.tree_.feature, estimator.tree_.threshold, strict=True)
            if f >= 0
        }
    )
    rows = []
    for feature, threshold in Random(4).sample(splits, min(60, len(splits))):
        below32 = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
        above32 = float(np.nextafter(np.float32(threshold), np.float32(np.inf)))
        for value in (
            threshold,
            math.nextafter(threshold, -math.inf),
            math.nextafter(threshold, math.inf),
            below32,
            above32,
        ):
            row = list(base)
            row[feature] = value
            rows.append(tuple(row))
    return rows


def test_the_default_model_gives_predict_probas_bits(
    default_model: GradientBoostingClassifier, data: tuple[Rows, list[int]]
) -> None:
    rows = data[0]
    extremes = [
        tuple(0.0 for _ in FEATURE_NAMES),
        tuple(-1e30 for _ in FEATURE_NAMES),
        tuple(3.0e38 for _ in FEATURE_NAMES),  # just within float32's range
        *(tuple(Random(i).uniform(-10, 5000) for _ in FEATURE_NAMES) for i in range(300)),
        *_ties(default_model, rows[0]),
        *_ties(default_model, rows[1]),
    ]
    every = [*rows, *extremes]
    compiled = _compiled(default_model)
    assert _bits(compiled.proba(every)) == _bits(_expected(default_model, every))
    _assert_same_bits_in_any_batch(compiled, every)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e39])
def test_gradient_boosting_refuses_what_predict_proba_refuses(
    default_model: GradientBoostingClassifier, data: tuple[Rows, list[int]], bad: float
) -> None:
    row = (bad, *data[0][0][1:])
    with pytest.raises(ValueError, match="finite"):
        _compiled(default_model).proba([data[0][1], row])
    with pytest.raises(ValueError, match=r"NaN|infinity"), np.errstate(over="ignore"):
        default_model.predict_proba(np.asarray([row]))


def test_other_gradient_boosting_settings(data: tuple[Rows, list[int]]) -> None:
    rows, labels = data
    model = GradientBoostingClassifier(
        n_estimators=25, max_depth=6, init="zero", subsample=0.7, random_state=1
    ).fit(rows[:3000], labels[:3000])
    assert _compiled(model).forests[0].depth == 6
    assert _bits(_compiled(model).proba(rows)) == _bits(_expected(model, rows))


def test_hist_gradient_boosting_with_missing_and_infinite_values(
    hist_model: HistGradientBoostingClassifier, data: tuple[Rows, list[int]]
) -> None:
    nan_left = _compiled(hist_model).forests[0].nan_left
    assert nan_left is not None
    assert nan_left.any()
    x = _with_nans(data[0], share=0.2)
    x[::97, 5] = np.inf
    x[::89, 0] = -np.inf
    rows: Rows = [tuple(row) for row in x.tolist()]
    assert _bits(_compiled(hist_model).proba(rows)) == _bits(_expected(hist_model, x))
    _assert_same_bits_in_any_batch(_compiled(hist_model), rows[:1000])


@pytest.mark.parametrize("ensemble", ["frozen", "cv"])
def test_sigmoid_calibrated_models(
    hist_model: HistGradientBoostingClassifier, data: tuple[Rows, list[int]], ensemble: str
) -> None:
    rows, labels = data
    x = _with_nans(rows)
    if ensemble == "frozen":  # how `fraudscore train` calibrates
        model = CalibratedClassifierCV(FrozenEstimator(hist_model), method="sigmoid")
        model.fit(x[4000:], labels[4000:])
    else:
        model = CalibratedClassifierCV(
            HistGradientBoostingClassifier(max_iter=15), method="sigmoid", cv=3
        ).fit(x[:3000], labels[:3000])
    compiled = _compiled(model)
    assert len(compiled.forests) == len(model.calibrated_classifiers_)
    every: Rows = [tuple(row) for row in x.tolist()]
    assert _bits(compiled.proba(every)) == _bits(_expected(model, x))


def test_unsupported_models_are_not_compiled(
    default_model: GradientBoostingClassifier,
    hist_model: HistGradientBoostingClassifier,
    data: tuple[Rows, list[int]],
) -> None:
    rows, labels = data
    x, y = np.asarray(rows[:3000]), np.asarray(labels[:3000])
    three_classes = np.where(np.arange(3000) % 3 == 0, 2, y)
    uniform = DummyClassifier(strategy="uniform")  # constant, but not the prior
    unsupported = [
        DecisionTreeClassifier(max_depth=3).fit(x, y),
        GradientBoostingClassifier(n_estimators=3).fit(x, three_classes),
        GradientBoostingClassifier(n_estimators=3, loss="exponential").fit(x, y),
        GradientBoostingClassifier(n_estimators=3, init=DecisionTreeClassifier()).fit(x, y),
        GradientBoostingClassifier(n_estimators=3, init=uniform).fit(x, y),
        CalibratedClassifierCV(FrozenEstimator(hist_model), method="isotonic").fit(x, y),
        CalibratedClassifierCV(DecisionTreeClassifier(max_depth=3), cv=2).fit(x, y),
        HistGradientBoostingClassifier(max_iter=3, categorical_features=[31]).fit(x, y),
    ]
    assert [compile_model(model) for model in unsupported] == [None] * len(unsupported)
    assert compile_model(default_model) is not None


def test_contributions_explain_the_difference_between_two_raw_scores(
    default_model: GradientBoostingClassifier,
    hist_model: HistGradientBoostingClassifier,
    data: tuple[Rows, list[int]],
) -> None:
    rows = data[0][:400]
    for model in (default_model, hist_model):
        compiled = _compiled(model)
        explained = np.asarray(compiled.contributions(rows)).sum(axis=1)
        raw = model.decision_function(np.asarray(rows))
        # Each row's contributions add up to its raw score minus the same constant.
        np.testing.assert_allclose(explained - explained[0], raw - raw[0], atol=1e-9)


def test_contributions_are_the_same_bits_in_any_batch(
    default_model: GradientBoostingClassifier, data: tuple[Rows, list[int]]
) -> None:
    rows = data[0][:300]
    compiled = _compiled(default_model)
    whole = compiled.contributions(rows)
    assert [c for row in rows for c in compiled.contributions([row])] == whole
    assert all(len(row) == len(FEATURE_NAMES) for row in whole)


def test_a_feature_no_split_uses_contributes_nothing(data: tuple[Rows, list[int]]) -> None:
    rows, labels = data
    x = np.asarray(rows[:2000])
    x[:, 3] = 0.0  # constant: never split on
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, labels[:2000])
    contributions = np.asarray(_compiled(model).contributions(rows[2000:2300]))
    assert not contributions[:, 3].any()
    assert contributions.any()


@pytest.mark.parametrize("kind", ["gradient boosting", "hist with NaN", "calibrated"])
def test_saved_trees_load_to_the_same_bits(
    default_model: GradientBoostingClassifier,
    hist_model: HistGradientBoostingClassifier,
    data: tuple[Rows, list[int]],
    tmp_path: Path,
    kind: str,
) -> None:
    rows, labels = data
    model: Any = {"gradient boosting": default_model, "hist with NaN": hist_model}.get(kind)
    if model is None:
        model = CalibratedClassifierCV(FrozenEstimator(hist_model), method="sigmoid")
        model.fit(_with_nans(rows)[4000:], labels[4000:])
    x = rows if model is default_model else [tuple(r) for r in _with_nans(rows).tolist()]
    compiled = _compiled(model)
    compiled.save(tmp_path / "trees.npz")
    loaded = CompiledModel.load(tmp_path / "trees.npz")
    assert _bits(loaded.proba(x)) == _bits(compiled.proba(x))
    assert loaded.contributions(x[:200]) == compiled.contributions(x[:200])
    assert (loaded.platt, loaded.n_features, loaded.float32) == (
        compiled.platt,
        compiled.n_features,
        compiled.float32,
    )


def test_a_file_that_is_not_saved_trees_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "other.npz", format=np.array(1))
    for path in (tmp_path / "empty.npz", tmp_path / "other.npz", tmp_path / "missing.npz"):
        with pytest.raises(ValueError, match=r"no saved trees|saved trees format"):
            CompiledModel.load(path)


def test_big_batches_are_evaluated_in_slices_with_the_same_bits(
    hist_model: HistGradientBoostingClassifier, data: tuple[Rows, list[int]]
) -> None:
    rows: Rows = [tuple(row) for row in _with_nans(data[0]).tolist()]
    assert len(rows) > 4096  # more than one slice
    compiled = _compiled(hist_model)
    pieces = [rows[i : i + 1000] for i in range(0, len(rows), 1000)]
    assert _bits(compiled.proba(rows)) == _bits(
        [p for piece in pieces for p in compiled.proba(piece)]
    )
    assert compiled.contributions(rows) == [
        c for piece in pieces for c in compiled.contributions(piece)
    ]


def test_big_batches_stay_small_in_memory(
    hist_model: HistGradientBoostingClassifier, data: tuple[Rows, list[int]]
) -> None:
    # `fraudscore train` scores a whole test period at once: kept whole, the (rows, trees)
    # node arrays of every tree level took 17 GB for 473,073 rows
    rows: Rows = [tuple(row) for row in _with_nans(data[0]).tolist()] * 8
    compiled = _compiled(hist_model)
    inputs = len(rows) * compiled.n_features * 8  # the float64 matrix proba builds
    tracemalloc.start()
    try:
        compiled.proba(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * inputs, f"{peak / 1e6:.1f} MB for {inputs / 1e6:.1f} MB of inputs"
