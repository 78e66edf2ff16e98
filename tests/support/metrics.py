"""Reading Prometheus text exposition back into numbers, with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """Every sample as ``(name, labels) -> value``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sample ``name{labels}``; 0 if it is not there."""
    return series.get((name, frozenset((labels or {}).items())), 0.0)


def by_label(series: Series, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` by the value of one label (non-zero ones only)."""
    found: dict[str, float] = {}
    for (sample, labels), number in series.items():
        if sample == name and number:
            key = dict(labels)[label]
            found[key] = found.get(key, 0.0) + number
    return found
