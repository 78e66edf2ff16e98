"""The default model is trained once, then loaded: the same model, refused when damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import model_cache
from models.artefact import MODEL_FILE
from models.default import MODEL_VERSION, featurize
from models.scorer import Scorer
from models.synthetic import generate


def _scores(scorer: Scorer) -> list[float]:
    vectors, _ = featurize(generate(2000, cards=500, seed=11, fraud_rate=0.05))
    return scorer.score_batch(vectors)


def test_trained_once_then_loaded_with_identical_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = model_cache.cached_default_model(tmp_path)
    [directory] = tmp_path.iterdir()
    assert directory.name == f"{MODEL_VERSION}-{model_cache.training_code_hash()}"

    def no_training() -> Scorer:
        raise AssertionError("trained again although the cache holds the model")

    monkeypatch.setattr(model_cache, "train_default_model", no_training)
    loaded = model_cache.cached_default_model(tmp_path)
    assert loaded.version == trained.version == MODEL_VERSION
    assert loaded.model is None  # its compiled trees: no scikit-learn to import
    assert _scores(loaded) == _scores(trained)


def test_a_damaged_cache_is_trained_again_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = model_cache.cached_default_model(tmp_path)
    [directory] = tmp_path.iterdir()
    (directory / MODEL_FILE).write_bytes(b"not a model")
    again = model_cache.cached_default_model(tmp_path)
    assert "refused" in caplog.text
    assert _scores(again) == _scores(first)
    assert [p.name for p in tmp_path.iterdir()] == [directory.name]  # replaced, nothing left over
    assert model_cache.cached_default_model(tmp_path).version == MODEL_VERSION


def test_an_unwritable_cache_only_costs_the_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    assert model_cache.cached_default_model(blocker / "models").version == MODEL_VERSION
