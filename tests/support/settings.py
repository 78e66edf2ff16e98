"""Settings for one test's own deployment: unique topics and groups; state, and the audit
catalog and warehouse, under ``var_dir``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.db import migration
from app.db.engine import create_db_engine
from app.settings import FraudscoreSettings, get_settings


def isolated_settings(
    bootstrap: str, unique: str, var_dir: Path, **overrides: Any
) -> FraudscoreSettings:
    return FraudscoreSettings(
        kafka_bootstrap=bootstrap,
        input_topic=f"tx-{unique}",
        decisions_topic=f"decisions-{unique}",
        dlq_topic=f"tx-{unique}.dlq",
        late_topic=f"tx-{unique}.late",
        changelog_topic=f"state-{unique}.changelog",
        labels_topic=f"labels-{unique}",
        labels_dlq_topic=f"labels-{unique}.dlq",
        group_id=f"fraudscore-{unique}",
        audit_group_id=f"fraudscore-audit-{unique}",
        var_dir=var_dir,
        **overrides,
    )


@contextmanager
def migrated_registry(settings: FraudscoreSettings) -> Iterator[FraudscoreSettings]:
    """``settings`` with their registry database migrated (Alembic) and ``get_settings``'
    cache cleared around the block (the CLI under test reads the environment)."""
    engine = create_db_engine(settings)
    migration.upgrade(engine)
    engine.dispose()
    get_settings.cache_clear()
    try:
        yield settings
    finally:
        get_settings.cache_clear()
