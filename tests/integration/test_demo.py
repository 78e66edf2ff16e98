"""``fraudscore demo``'s run on the real broker and database: the merchant-risk aggregator
publishes the snapshot of the traffic's day from the history's labels before the worker
starts, so every decision carries merchant features from it, and some merchants have a
labelled history."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo import run_demo
from app.settings import FraudscoreSettings
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration


class _Quiet:
    def sent(self, n: int) -> None:
        pass

    def decided(self, decision: dict[str, object]) -> None:
        pass

    def dead_lettered(self, reason: str) -> None:
        pass


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(kafka_bootstrap, unique, tmp_path / "var")


async def test_the_demo_decides_with_the_merchant_snapshot_of_its_day(
    settings: FraudscoreSettings,
) -> None:
    summary = await run_demo(
        settings, _Quiet(), count=400, rate=0, cards=300, seed=1, malformed=3, authorized=20
    )
    assert summary.decided == 400
    assert sum(summary.dead_letters.values()) == 3
    assert summary.authorizer is not None
    # each of its 20 got an answer: the decision, or the fallback if the decision came later
    # than its timeout (a loaded machine); the worker decided all 400 either way (above)
    assert summary.authorizer.sent == 20
    assert summary.authorizer.decided + summary.authorizer.fell_back == 20
    assert summary.history_labels > 0
    assert summary.merchant_snapshots == {"2026-01-01/d7": 400}
    assert 0 < summary.known_merchants < 400
