"""``fraudscore generate`` then ``fraudscore train`` in a temporary directory, small and quick;
then a worker pipeline built from the artefact."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from app.cli import app
from app.settings import FraudscoreSettings
from app.worker import build_pipeline
from models.artefact import read_metadata
from sinks.parquet import LABELS_FILE, TRANSACTIONS_FILE


def test_generate_then_train_writes_an_artefact_the_worker_loads(tmp_path: Path) -> None:
    runner = CliRunner()
    data, runs = tmp_path / "data", tmp_path / "runs"
    generated = runner.invoke(
        app,
        ["generate", "--out", str(data), "--cards", "500", "--days", "30", "--fraud-rate", "0.05"],
    )
    assert generated.exit_code == 0, generated.output
    transactions = pq.read_table(data / TRANSACTIONS_FILE)
    labels = pq.read_table(data / LABELS_FILE)
    assert transactions.num_rows > 20_000
    assert 0 < labels.num_rows < transactions.num_rows
    assert transactions.column("offset").to_pylist() == list(range(transactions.num_rows))

    periods = ["--warmup-days", "2", "--gap-days", "12", "--test-days", "6"]
    args = ["train", str(data), "--out", str(runs), "--version", "e2e-1", "--max-iter", "30"]
    trained = runner.invoke(app, [*args, *periods])
    assert trained.exit_code == 0, trained.output
    run = runs / "e2e-1"
    assert {"model.skops", "metadata.json", "report.md", "pr_curve.png", "scores.png",
            "confusion.png"} <= {p.name for p in run.iterdir()}  # fmt: skip
    report = (run / "report.md").read_text()
    assert "average precision" in report
    assert "](pr_curve.png)" in report
    metrics = read_metadata(run).training["metrics"]
    assert metrics["model"]["auc_roc"] > metrics["velocity_rule"]["auc_roc"]
    assert read_metadata(run).training["data_range"]["label_cutoff"].startswith("2026-01-25")

    pipeline = build_pipeline(FraudscoreSettings(model_path=run))
    assert pipeline.scorer.version == "e2e-1"


def test_train_on_a_missing_dataset_fails_with_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "fraudscore generate" in result.output
