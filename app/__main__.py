"""``python -m app``: the same as the ``fraudscore`` command."""

from app.cli import main

main()
