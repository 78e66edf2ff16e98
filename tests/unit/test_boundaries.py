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
)


def test_features_and_models_import_no_io_library() -> None:
    # A fresh interpreter: this test process has imported everything already.
    probe = (
        "import sys, features.card, features.validation, models.pipeline, models.default, "
        "models.synthetic, models.training, models.artefact, models.evaluation; "
        f"print(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_features_imports_nothing_from_the_rest_of_the_project() -> None:
    probe = (
        "import sys, features.card, features.validation, features.pan, features.state_migration; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'models', 'sinks')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_worker_imports_no_scikit_learn() -> None:
    # scikit-learn, scipy and skops cost ~3 s of every worker start; a worker scores with the
    # compiled trees of its artefact (models.trees) and needs them only to train or to read
    # an artefact without saved trees
    probe = (
        "import sys, app.worker, app.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'skops'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
