"""Model artefacts: a round trip keeps every bit; the wrong features or files are refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.tree import DecisionTreeClassifier

from features.schema import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from models.artefact import (
    METADATA_FILE,
    MODEL_FILE,
    TREES_FILE,
    feature_schema_hash,
    load_artefact,
    read_metadata,
    save_artefact,
)
from models.errors import ArtefactError
from models.scorer import Scorer

X = np.random.default_rng(3).normal(size=(600, len(FEATURE_NAMES)))
Y = (X[:, 0] + X[:, 5] > 1.5).astype(np.int64)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    trees = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X[:400], Y[:400])
    model = CalibratedClassifierCV(FrozenEstimator(trees), method="sigmoid").fit(X[400:], Y[400:])
    return Scorer(model=model, version="test-1", feature_names=FEATURE_NAMES)


@pytest.fixture
def artefact(tmp_path: Path, scorer: Scorer) -> Path:
    save_artefact(tmp_path / "run", scorer, {"metrics": {"auc_roc": 0.9}})
    return tmp_path / "run"


def _edit_metadata(directory: Path, **changes: object) -> None:
    path = directory / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


def test_round_trip_keeps_every_score_and_the_metadata(artefact: Path, scorer: Scorer) -> None:
    loaded = load_artefact(artefact)
    assert loaded.model is None  # scored by the saved trees, scikit-learn not needed
    assert loaded.version == "test-1"
    assert loaded.feature_names == FEATURE_NAMES
    vectors = [tuple(row) for row in X.tolist()]
    assert loaded.score_batch(vectors) == scorer.score_batch(vectors)
    metadata = read_metadata(artefact)
    assert metadata.feature_names == FEATURE_NAMES
    assert metadata.feature_schema_version == FEATURE_SCHEMA_VERSION
    assert metadata.feature_schema_hash == feature_schema_hash()
    assert {"python", "scikit-learn", "numpy", "skops"} <= set(metadata.libraries)
    assert metadata.training == {"metrics": {"auc_roc": 0.9}}


@pytest.mark.parametrize(
    "changes",
    [
        {"feature_names": [*FEATURE_NAMES[1:], FEATURE_NAMES[0]]},  # same names, other order
        {"feature_names": list(FEATURE_NAMES[:-1])},
        {"feature_schema_version": FEATURE_SCHEMA_VERSION - 1},
        {"feature_schema_hash": "0" * 64},
    ],
)
def test_an_artefact_for_other_features_is_refused_with_what_to_do(
    artefact: Path, changes: dict[str, object]
) -> None:
    _edit_metadata(artefact, **changes)
    with pytest.raises(ArtefactError, match=r"feature schema v\d.*retrain it with this version"):
        load_artefact(artefact)


def test_a_changed_model_file_is_refused(artefact: Path) -> None:
    with (artefact / MODEL_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtefactError, match="checksum"):
        load_artefact(artefact)


def test_changed_trees_are_refused(artefact: Path) -> None:
    with (artefact / TREES_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtefactError, match="checksum"):
        load_artefact(artefact)


def test_an_artefact_without_saved_trees_loads_its_skops_model(
    artefact: Path, scorer: Scorer
) -> None:
    (artefact / TREES_FILE).unlink()
    _edit_metadata(artefact, trees_sha256=None)  # as artefacts written before trees.npz
    loaded = load_artefact(artefact)
    assert loaded.model is not None
    assert loaded.compiled
    vectors = [tuple(row) for row in X.tolist()]
    assert loaded.score_batch(vectors) == scorer.score_batch(vectors)


def test_the_registry_digest_covers_both_files(artefact: Path) -> None:
    metadata = read_metadata(artefact)
    assert metadata.trees_sha256 is not None
    _edit_metadata(artefact, trees_sha256="0" * 64)
    changed = read_metadata(artefact)
    assert changed.model_sha256 == metadata.model_sha256
    assert changed.digest != metadata.digest


def test_loading_saved_trees_never_imports_scikit_learn(artefact: Path) -> None:
    probe = (
        "import sys; from pathlib import Path; from models.artefact import load_artefact; "
        f"s = load_artefact(Path({str(artefact)!r})); assert s.model is None and s.compiled; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skops', 'scipy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_model_needing_untrusted_types_is_refused(artefact: Path) -> None:
    sio.dump(DecisionTreeClassifier().fit(X, Y), artefact / MODEL_FILE)
    untrusted = sio.get_untrusted_types(file=artefact / MODEL_FILE)
    assert untrusted  # the tree's internals are not on our list
    digest = hashlib.sha256((artefact / MODEL_FILE).read_bytes()).hexdigest()
    _edit_metadata(artefact, model_sha256=digest, trees_sha256=None)
    with pytest.raises(ArtefactError, match="does not trust"):
        load_artefact(artefact)


def test_another_scikit_learn_minor_version_is_refused(artefact: Path) -> None:
    metadata = json.loads((artefact / METADATA_FILE).read_text())
    _edit_metadata(artefact, libraries=metadata["libraries"] | {"scikit-learn": "1.2.0"})
    with pytest.raises(ArtefactError, match=r"scikit-learn 1\.2\.0"):
        load_artefact(artefact)


def test_a_missing_artefact_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="FRAUDSCORE_MODEL_PATH"):
        load_artefact(tmp_path)
