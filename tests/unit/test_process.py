"""A child process started through ``settings_env`` builds exactly the parent's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.process import settings_env
from app.settings import FraudscoreSettings


def test_every_setting_survives_the_trip_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = FraudscoreSettings(
        var_dir=Path("/srv/fraudscore"),
        instance_id=None,
        audit_table_properties={"write.target-file-size-bytes": "1048576", "a.b": "x y"},
        audit_catalog_uri="sqlite:////srv/fraudscore/catalog.db",
    )
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert FraudscoreSettings() == settings
