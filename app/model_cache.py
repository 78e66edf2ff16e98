"""The built-in default model: trained once per build and machine, then loaded.

Every worker start, reference run and benchmark that has no ``FRAUDSCORE_MODEL_PATH`` needs
the default model (:mod:`models.default`). Training it is deterministic but costs about 4 s
of CPU, and 25 s or more on a loaded 2-core machine, at every start. So the first start
saves it as an ordinary artefact under ``model_cache_dir/<model version>-<code hash>`` and
later starts load it, with every check of :func:`models.artefact.load_artefact` (feature
schema, checksum, scikit-learn version). The code hash covers the source of everything that
decides what is trained (the feature code and the default model's generator and trainer), so
a build that would train another model looks in another directory.

A cached artefact that is refused (damaged, another scikit-learn) is trained again and
replaced; a cache that cannot be written (read-only home) only costs the training.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import features
from models import default, synthetic
from models.artefact import METADATA_FILE, load_artefact, save_artefact
from models.default import DEFAULT_COUNT, DEFAULT_SEED, MODEL_VERSION, train_default_model
from models.errors import ArtefactError
from models.scorer import Scorer

log = logging.getLogger(__name__)

# The default model's trees: trusted here only because this module wrote the file (see
# models.artefact.load_artefact); `fraudscore train`'s artefacts do not need it.
_OWN_TYPES = ("sklearn.tree._tree.Tree",)
# what a cached artefact holds; a new layout gets new directories. 2: with trees.npz, which
# workers load without importing scikit-learn (an artefact without it would still load, but
# slowly, for as long as the training code stays the same)
_LAYOUT = b"layout 2\0"


def _training_code() -> list[Path]:
    package = Path(features.__file__).parent
    modules = [Path(m.__file__) for m in (default, synthetic) if m.__file__ is not None]
    return [*sorted(package.glob("*.py")), *modules]


def training_code_hash() -> str:
    """SHA-256 (hex, 16 characters) of the cache's layout and the source files the default
    model depends on."""
    digest = hashlib.sha256(_LAYOUT)
    for path in _training_code():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_default_model(cache_dir: Path) -> Scorer:
    """The default model from ``cache_dir``, trained and saved there first if need be."""
    directory = cache_dir / f"{MODEL_VERSION}-{training_code_hash()}"
    if (directory / METADATA_FILE).is_file():
        try:
            return load_artefact(directory, also_trusted=_OWN_TYPES)
        except ArtefactError as exc:
            log.warning("the cached default model is refused (%s); training it again", exc)
    log.info("training the default model (once: it is cached in %s)", directory)
    scorer = train_default_model()
    try:
        _save(directory, scorer)
    except OSError as exc:
        log.warning("could not cache the default model in %s: %s", directory, exc)
    return scorer


def _save(directory: Path, scorer: Scorer) -> None:
    """Write the artefact beside ``directory`` and rename it into place, so a concurrent
    start never loads half a file; if another process got there first, keep theirs."""
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save_artefact(
        staging,
        scorer,
        {"purpose": "default model cache", "seed": DEFAULT_SEED, "count": DEFAULT_COUNT},
    )
    if directory.exists():  # refused above: replace it
        shutil.rmtree(directory, ignore_errors=True)
    try:
        staging.rename(directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (directory / METADATA_FILE).is_file():
            raise
