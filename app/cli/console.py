"""Terminal output shared by the CLI commands.

``console`` writes messages, spinners and errors to stderr; ``stdout`` is for a command's
actual result (tables, JSON) so it can be piped. :func:`catch_errors` turns any
:class:`~app.errors.FraudscoreError` into one red line and exit code 1, without a traceback;
use it as ``with catch_errors():`` or as the decorator ``@catch_errors()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from app.errors import FraudscoreError
from app.logs import json_logging

console = Console(stderr=True)
stdout = Console()
log = logging.getLogger("app.cli")


def announce(markup: str) -> None:
    """A long-running command's start banner: on the console, or, when the process logs
    JSON lines, as one of them (so stderr stays one JSON object per line)."""
    if json_logging():
        log.info(Text.from_markup(markup).plain)
    else:
        console.print(markup, soft_wrap=True)


class OutputFormat(StrEnum):
    """``--output``: a table for people, or JSON for scripts."""

    text = "text"
    json = "json"


@contextmanager
def catch_errors() -> Iterator[None]:
    """Report a FraudscoreError on stderr and exit with code 1."""
    try:
        yield
    except FraudscoreError as exc:
        if json_logging():
            log.error("%s", exc)
            raise typer.Exit(code=1) from None
        console.print(
            f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=1) from None
