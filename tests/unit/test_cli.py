"""Every command answers --help, and the README documents every setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.settings import FraudscoreSettings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["worker"],
        ["demo"],
        ["loadgen"],
        ["bench"],
        ["authorizer"],
        ["healthcheck"],
        ["generate"],
        ["train"],
        ["kafka"],
        ["kafka", "up"],
        ["kafka", "logs"],
        ["savepoint"],
        ["savepoint", "create"],
        ["savepoint", "show"],
        ["audit-sink"],
        ["merchant-risk"],
        ["audit"],
        *[["audit", command] for command in ("txn", "card", "stats", "sql", "reproduce")],
        ["audit", "maintain"],
        ["db"],
        ["db", "upgrade"],
        ["db", "log"],
        ["model"],
        *[["model", command] for command in ("register", "list", "promote", "rollback")],
        *[["model", command] for command in ("shadow", "unshadow")],
        ["policy"],
        ["policy", "show"],
        ["policy", "set"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_readme_configuration_table_lists_every_setting() -> None:
    text = README.read_text()
    missing = [
        name
        for name in FraudscoreSettings.model_fields
        if f"`FRAUDSCORE_{name.upper()}`" not in text
    ]
    assert not missing, f"document these settings in README.md: {missing}"


def test_the_cli_loads_iceberg_only_for_audit_commands() -> None:
    """`fraudscore worker` starts through app.cli: pyiceberg and pyarrow cost it seconds (the
    worker needs SQLAlchemy itself, for the registry)."""
    probe = "import sys, app.cli; print([m for m in ('pyiceberg', 'pyarrow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
