"""Micro-benchmarks behind the dependency decisions recorded in ``docs/adr``.

Each module runs as ``python -m app.bench.<name>`` and prints its numbers with the machine,
library versions and date, ready to paste into ``docs/BENCHMARKS.md``.
"""
