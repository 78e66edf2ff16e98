"""Dependencies point inward: the domain packages import no I/O library (README, Boundaries)."""

from __future__ import annotations

import subprocess
import sys

IO_LIBRARIES = (
    "faust",
    "aiokafka",
    "confluent_kafka",
    "rocksdict",
    "pyiceberg",
    "fastapi",
    "sqlalchemy",
    "uvicorn",
    "prometheus_client",
)


def _top_level_packages_imported(modules: str, packages: tuple[str, ...]) -> list[str]:
    """Which of ``packages`` a fresh interpreter has loaded after importing ``modules`` (this
    test process has imported everything already)."""
    probe = (
        f"import sys, {modules}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [name.strip("' ") for name in out.stdout.strip()[1:-1].split(",") if name.strip()]


def test_features_and_models_import_no_io_library() -> None:
    domain = (
        "features.card, features.validation, models.pipeline, models.default, "
        "models.synthetic, models.training, models.artefact, models.evaluation"
    )
    assert _top_level_packages_imported(domain, IO_LIBRARIES) == []


def test_features_imports_nothing_from_the_rest_of_the_project() -> None:
    features = "features.card, features.validation, features.pan, features.state_migration"
    assert _top_level_packages_imported(features, ("app", "models", "sinks")) == []


def test_the_worker_imports_no_scikit_learn() -> None:
    # scikit-learn, scipy and skops cost ~3 s of every worker start; a worker scores with the
    # compiled trees of its artefact (models.trees) and needs them only to train or to read
    # an artefact without saved trees
    assert _top_level_packages_imported("app.worker, app.cli", ("sklearn", "scipy", "skops")) == []
