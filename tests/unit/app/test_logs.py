"""The JSON log format: one object per line, the same fields every time, no card numbers."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pydantic import SecretStr

from app.logs import JsonFormatter, MaskingTextFormatter
from app.settings import FraudscoreSettings

PAN = "4111 1111 1111 1111"  # a test Visa number: it passes the Luhn check


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("app.worker")
    return logger.makeRecord(
        "app.worker", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def test_a_json_line_has_the_fixed_fields_then_context_then_extras() -> None:
    formatter = JsonFormatter("fraudscore", "worker")
    formatter.add_context(worker_id="w1")
    line = json.loads(formatter.format(_record("partition %d ready", 3, partition=3)))
    assert list(line)[:9] == [
        "timestamp", "level", "logger", "message", "process", "thread", "service", "component",
        "worker_id",
    ]  # fmt: skip
    assert line["timestamp"].endswith("Z")
    assert line["level"] == "WARNING"
    assert line["message"] == "partition 3 ready"
    assert (line["service"], line["component"], line["partition"]) == ("fraudscore", "worker", 3)


def test_card_numbers_are_masked_in_messages_and_tracebacks() -> None:
    formatter = JsonFormatter("fraudscore", "worker")
    try:
        raise ValueError(f"bad record {PAN}")
    except ValueError:
        record = _record("rejected %s", PAN)
        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert "4111 11** **** 1111" in line["message"]
    assert PAN not in line["message"]
    assert PAN not in line["exception"]
    assert "ValueError" in line["exception"]
    text = MaskingTextFormatter("%(message)s").format(_record("rejected %s", PAN))
    assert text == "rejected 4111 11** **** 1111"


def test_the_format_follows_the_environment_unless_set(tmp_path: Path) -> None:
    def json_logs(**values: object) -> bool:
        return FraudscoreSettings(var_dir=tmp_path, **values).json_logs  # type: ignore[arg-type]

    assert not json_logs(environment="dev")
    assert json_logs(environment="production")
    assert json_logs(environment="dev", log_format="json")
    assert not json_logs(environment="production", log_format="text")


def test_secrets_print_masked(tmp_path: Path) -> None:
    secret = SecretStr("s3cret-of-32-bytes-or-more-0123456")
    settings = FraudscoreSettings(var_dir=tmp_path, api_jwt_secret=secret)
    line = JsonFormatter("fraudscore", "api").format(_record("settings: %s", settings))
    assert "s3cret" not in line
