"""Model artefacts: a directory with the fitted model in skops format and its metadata.

``model.skops`` is the model in skops' format, which rebuilds scikit-learn objects from a
description instead of unpickling: :func:`load_artefact` accepts scikit-learn's own types
and the three internals of the trained model (:data:`TRUSTED_TYPES`) and refuses a file
that needs anything else, so a tampered artefact cannot run code. ``metadata.json`` says what
the model is: its version, the feature names in order with the feature schema's version and
hash, the model file's SHA-256, the library versions it was fitted with, and free-form
training facts (data range, split, row counts, metrics) written by ``fraudscore train``.

A model that compiles (:mod:`models.tree_reader`: the boosted trees ``fraudscore train``
fits) is also saved as ``trees.npz``, its compiled arrays (:meth:`models.trees.CompiledModel.save`),
with their own SHA-256 in the metadata. :func:`load_artefact` scores with those when they are
there, without reading the skops file: numbers only, the same bits, and no scikit-learn or
skops import (about 3 s of every worker start). Artefacts written before ``trees.npz`` existed
load from the skops file as before.

:func:`load_artefact` refuses, with an :class:`~models.errors.ArtefactError` that says what to
do, an artefact made for other features (names, order, schema version or hash differ from
:data:`features.schema.FEATURE_NAMES`), a model file that does not match its checksum, or one
fitted with another minor version of scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import msgspec

from features.schema import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from models.errors import ArtefactError
from models.scorer import Scorer
from models.trees import CompiledModel

ARTEFACT_FORMAT = 1
MODEL_FILE = "model.skops"
TREES_FILE = "trees.npz"
METADATA_FILE = "metadata.json"
TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
_LIBRARIES = ("scikit-learn", "numpy", "scipy", "skops", "fraudscore")


class ArtefactMetadata(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    model_version: str
    feature_schema_version: int
    feature_names: tuple[str, ...]
    feature_schema_hash: str
    model_sha256: str
    libraries: dict[str, str]
    training: dict[str, Any] = msgspec.field(default_factory=dict)
    trees_sha256: str | None = None  # None: no trees.npz (not compiled, or an older artefact)

    @property
    def digest(self) -> str:
        """What a registry pins: the model file's SHA-256, or the SHA-256 of both files'."""
        if self.trees_sha256 is None:
            return self.model_sha256
        return hashlib.sha256(f"{self.model_sha256}:{self.trees_sha256}".encode()).hexdigest()


def feature_schema_hash(
    version: int = FEATURE_SCHEMA_VERSION, names: tuple[str, ...] = FEATURE_NAMES
) -> str:
    """SHA-256 of the feature schema version and the feature names in order."""
    payload = json.dumps({"version": version, "names": list(names)}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version()} | {
        name: installed_version(name) for name in _LIBRARIES
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_artefact(directory: Path, scorer: Scorer, training: dict[str, Any]) -> ArtefactMetadata:
    """Write ``scorer`` and its metadata into ``directory`` (created if needed)."""
    if scorer.feature_names != FEATURE_NAMES:
        raise ArtefactError("the scorer's feature names are not this build's FEATURE_NAMES")
    if scorer.model is None:
        raise ArtefactError(f"model {scorer.version!r} was loaded without its fitted model")
    import skops.io as sio  # noqa: PLC0415 - all of scikit-learn: only to write or read skops

    directory.mkdir(parents=True, exist_ok=True)
    sio.dump(scorer.model, directory / MODEL_FILE)
    if scorer.trees is not None:
        scorer.trees.save(directory / TREES_FILE)
    metadata = ArtefactMetadata(
        format=ARTEFACT_FORMAT,
        model_version=scorer.version,
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        feature_names=scorer.feature_names,
        feature_schema_hash=feature_schema_hash(),
        model_sha256=_sha256(directory / MODEL_FILE),
        libraries=library_versions(),
        training=training,
        trees_sha256=_sha256(directory / TREES_FILE) if scorer.trees is not None else None,
    )
    (directory / METADATA_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(metadata)))
    return metadata


def read_metadata(directory: Path) -> ArtefactMetadata:
    path = directory / METADATA_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=ArtefactMetadata)
    except FileNotFoundError:
        raise ArtefactError(
            f"no model artefact at {directory} ({METADATA_FILE} is missing): point "
            "FRAUDSCORE_MODEL_PATH at a directory written by `fraudscore train`"
        ) from None
    except msgspec.ValidationError as exc:
        raise ArtefactError(f"{path} is not artefact metadata ({exc}); retrain") from None


def load_artefact(directory: Path, *, also_trusted: tuple[str, ...] = ()) -> Scorer:
    """The scorer of the artefact in ``directory``, after every check in the module docstring.

    ``also_trusted``: more types to accept, only for artefacts this build wrote itself (the
    default model's cache: its trees are ``sklearn.tree._tree.Tree``, whose node indices
    scikit-learn does not bounds-check, so a file from elsewhere must not bring one)."""
    metadata = read_metadata(directory)
    check_schema(metadata, directory)
    _check_scikit_learn(metadata, directory)
    path = _checked(directory / MODEL_FILE, metadata.model_sha256)  # whole artefact intact
    if metadata.trees_sha256 is not None:
        trees_path = _checked(directory / TREES_FILE, metadata.trees_sha256)
        try:
            trees = CompiledModel.load(trees_path)
        except ValueError as exc:
            raise ArtefactError(
                f"{trees_path} is damaged ({exc}); retrain with `fraudscore train`"
            ) from None
        return Scorer(None, metadata.model_version, FEATURE_NAMES, trees)
    import skops.io as sio  # noqa: PLC0415 - all of scikit-learn (~3 s): uncompiled models only
    from skops.io.exceptions import UntrustedTypesFoundException  # noqa: PLC0415

    try:
        model = sio.load(path, trusted=[*TRUSTED_TYPES, *also_trusted])
    except UntrustedTypesFoundException as exc:
        raise ArtefactError(
            f"refusing to load {path}: it needs types this build does not trust ({exc}); "
            "only load models written by `fraudscore train`"
        ) from None
    return Scorer(model=model, version=metadata.model_version, feature_names=FEATURE_NAMES)


def _checked(path: Path, sha256: str) -> Path:
    if not path.is_file() or _sha256(path) != sha256:
        raise ArtefactError(
            f"{path} is missing or does not match the checksum in its metadata: the artefact "
            "is damaged or was changed; copy it again or retrain with `fraudscore train`"
        )
    return path


def check_schema(metadata: ArtefactMetadata, directory: Path) -> None:
    """Refuse an artefact whose features are not the ones this build computes."""
    ours = (FEATURE_SCHEMA_VERSION, FEATURE_NAMES, feature_schema_hash())
    theirs = (metadata.feature_schema_version, metadata.feature_names, metadata.feature_schema_hash)
    if theirs != ours:
        raise ArtefactError(
            f"model {metadata.model_version!r} at {directory} was trained on feature schema "
            f"v{metadata.feature_schema_version} ({len(metadata.feature_names)} features, hash "
            f"{metadata.feature_schema_hash[:12]}), but this worker computes schema "
            f"v{FEATURE_SCHEMA_VERSION} ({len(FEATURE_NAMES)} features, hash "
            f"{feature_schema_hash()[:12]}): retrain it with this version (`fraudscore "
            "train`), or run the fraudscore version it was trained with"
        )


def _check_scikit_learn(metadata: ArtefactMetadata, directory: Path) -> None:
    theirs = metadata.libraries.get("scikit-learn", "?")
    ours = installed_version("scikit-learn")
    if theirs.split(".")[:2] != ours.split(".")[:2]:
        raise ArtefactError(
            f"model {metadata.model_version!r} at {directory} was fitted with scikit-learn "
            f"{theirs}, this worker has {ours}: tree internals change between minor versions; "
            "retrain it with this version (`fraudscore train`)"
        )
