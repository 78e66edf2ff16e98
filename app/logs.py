"""Process-wide logging set-up for the CLI commands (structured JSON logs come later)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
