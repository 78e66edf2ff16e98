"""The worker's merchant snapshots: the registry database's published ones, kept at hand.

:class:`DatabaseSnapshots` is the :class:`features.merchant.SnapshotBook` a worker scores
with. A daemon thread reads which days have a published snapshot every
``registry_poll_ms`` and loads the newest two into memory, so that live scoring finds the
snapshot of its day there: the aggregator publishes it about a day before it is needed.

For a transaction of day d, :meth:`DatabaseSnapshots.snapshot_for` returns d's snapshot if
it is loaded; else, if the last read of the catalogue lists it (a replay of older days, or a
worker that started after it was published), it is loaded on the spot (one query; cached,
at most :data:`KEEP` snapshots); else the newest listed snapshot at most
``merchant_risk_max_staleness_days`` older (:func:`features.merchant.choose_version`), else
none. The decision records the version used, so a decision taken while its day's snapshot
was not yet listed (the aggregator more than a day behind, or a database that cannot be
read) differs from a replay that finds it, and says so.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.db.engine import never_migrated
from app.db.merchant_risk import load_snapshot, published_days
from features.merchant import MerchantRiskParams, Snapshot, choose_version

log = logging.getLogger(__name__)

KEEP = 8  # snapshots kept in memory (a few days around each partition's event time)
_PRELOAD = 2  # the newest published snapshots loaded ahead of need


class DatabaseSnapshots:
    def __init__(self, engine: Engine, params: MerchantRiskParams, poll_ms: int) -> None:
        self._engine = engine
        self.params = params
        self._poll_s = poll_ms / 1000
        self._days: list[int] = []
        self._loaded: dict[int, Snapshot] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readable = True
        self._failed: dict[int, float] = {}  # day -> when its load last failed (monotonic)
        self.refresh()

    # --- the scoring side -----------------------------------------------------------------------
    def snapshot_for(self, day: int) -> Snapshot | None:
        loaded = self._loaded.get(day)
        if loaded is not None:
            return loaded
        chosen = choose_version(self._days, day, self.params)
        if chosen is None:
            return None
        return self._loaded.get(chosen) or self._load(chosen)

    # --- the watcher's side ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="merchant-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.refresh()

    def refresh(self) -> None:
        """Read the catalogue of published days; load the newest ones not loaded yet."""
        try:
            days = published_days(self._engine, self.params.delay_days)
        except SQLAlchemyError as exc:
            if self._readable:
                log.log(
                    logging.INFO if never_migrated(self._engine) else logging.WARNING,
                    "cannot read the merchant snapshots (%s): merchant features are zero, "
                    "decisions say merchant_risk_version null (`fraudscore db upgrade`, "
                    "`fraudscore merchant-risk`)",
                    str(exc).splitlines()[0],
                )
            self._readable = False
            return
        self._readable = True
        self._days = days
        for day in days[-_PRELOAD:]:
            if day not in self._loaded:
                self._load(day)

    def _load(self, day: int) -> Snapshot | None:
        """Load a listed snapshot; after a failure, not again for one poll interval (the
        scoring thread must not wait on a database that is down, transaction after
        transaction)."""
        failed = self._failed.get(day)
        if failed is not None and time.monotonic() - failed < self._poll_s:
            return None
        try:
            loaded = load_snapshot(self._engine, day, self.params.delay_days)
        except SQLAlchemyError as exc:
            self._failed[day] = time.monotonic()
            log.warning("cannot load merchant snapshot of day %d: %s", day, exc)
            return None
        if loaded is None:
            return None
        with self._lock:
            self._loaded[day] = loaded
            for old in sorted(self._loaded)[:-KEEP]:
                del self._loaded[old]
        log.info("loaded merchant snapshot %s (%d merchants)", loaded.version, len(loaded.counts))
        return loaded
