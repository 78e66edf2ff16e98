"""Process-wide logging set-up for the CLI commands: plain text or one JSON object per line.

:func:`configure_logging` installs one stderr handler on the root logger. With
``FRAUDSCORE_LOG_FORMAT=json`` (the default outside the ``dev`` environment) every line is a
JSON object with the same fields, whoever logged it (our code, uvicorn, librdkafka's
wrappers):

``timestamp`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``message``, ``process``
(PID), ``thread``, ``service`` (``FRAUDSCORE_SERVICE_NAME``), ``component`` (``worker``,
``api``, ``audit-sink``, ...), then the process's context (:func:`add_log_context`, e.g. the
worker's ``worker_id``), then whatever the call passed as ``extra`` (e.g. ``partition``), and
``exception`` with the traceback if there is one.

Card numbers never reach a log line: any PAN in the message or the traceback is masked
(first 6 and last 4 digits kept, :func:`features.pan.mask_text`) in both formats. Secrets are
kept out by the settings themselves (``SecretStr`` prints as ``**********``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Final

from app.settings import FraudscoreSettings
from features.pan import mask_text

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
# the attributes every LogRecord has: anything else on a record came from ``extra``
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the fields of the module docstring."""

    def __init__(self, service: str, component: str) -> None:
        super().__init__()
        self.static = {"service": service, "component": component}
        self.context: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add_context(self, **fields: Any) -> None:
        with self._lock:
            self.context = {**self.context, **fields}

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            "process": record.process,
            "thread": record.threadName,
            **self.static,
            **self.context,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = mask_text(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class MaskingTextFormatter(logging.Formatter):
    """The plain text format, card numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


def configure_logging(
    level: str = "INFO", settings: FraudscoreSettings | None = None, component: str = ""
) -> None:
    """Send every log record at ``level`` and above to stderr: JSON lines if ``settings`` say
    so (``log_format``), else text."""
    handler = logging.StreamHandler(sys.stderr)
    if settings is not None and settings.json_logs:
        handler.setFormatter(JsonFormatter(settings.service_name, component))
    else:
        handler.setFormatter(MaskingTextFormatter(_TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def json_logging() -> bool:
    """Whether this process logs JSON lines (then nothing else should write to stderr)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def add_log_context(**fields: Any) -> None:
    """Add fields to every JSON line this process logs from now on (e.g. ``worker_id``);
    nothing in the text format."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.add_context(**fields)
