"""The pipeline a worker runs, kept in step with the registry without pausing the scoring.

A daemon thread reads the registry every ``registry_poll_ms``. When the active model, the
shadow model or the active policy has changed, that thread loads and checks the new artefacts
(:func:`app.db.registry.load_registered`: every check of ``load_artefact`` plus the checksum
registered), builds a new :class:`~models.pipeline.Pipeline` and leaves it in a slot. The
worker's loop takes it between two batches (:meth:`LivePipeline.take`): each batch is scored
by one pipeline, and the loop never waits for a load.

A refused artefact (made for other features, damaged, changed since registration) is not
used: the worker keeps what it runs, logs an error that names the model and the reason, and
tries again only when the registry's selection changes (or on restart). A registry it cannot
read (no database, not migrated, server down) changes nothing either; that is logged when it
starts and when it ends. With nothing in the registry, the worker runs the configured model
(``FRAUDSCORE_MODEL_PATH`` or the built-in default) and the configured thresholds, as before.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db.engine import never_migrated
from app.db.registry import ArtefactRef, Selection, load_registered, read_selection
from app.model_cache import cached_default_model
from app.settings import FraudscoreSettings
from features.merchant import SnapshotBook
from models.artefact import load_artefact
from models.errors import ArtefactError
from models.pipeline import NO_SNAPSHOTS, Pipeline
from models.policy import Policy
from models.scorer import Scorer

log = logging.getLogger(__name__)

_NOTHING = Selection(model=None, shadow=None, policy=None)


def configured_scorer(settings: FraudscoreSettings) -> Scorer:
    """The artefact at ``model_path`` if set (refused if made for other features), else the
    default model (trained at the first start, then loaded from ``model_cache_dir``)."""
    if settings.model_path is None:
        return cached_default_model(settings.model_cache_dir)
    return load_artefact(settings.model_path)


def configured_policy(settings: FraudscoreSettings) -> Policy:
    return Policy(
        review_threshold=settings.review_threshold,
        decline_threshold=settings.decline_threshold,
    )


def describe(pipeline: Pipeline) -> str:
    shadow = "none" if pipeline.shadow is None else pipeline.shadow.version
    return f"model {pipeline.scorer.version}, shadow {shadow}, policy {pipeline.policy.version}"


@dataclass(frozen=True, slots=True)
class _Running:
    """What the watcher last built: the registry's artefacts in it (None: not from the
    registry) and the pipeline."""

    model: ArtefactRef | None
    shadow: ArtefactRef | None
    pipeline: Pipeline


class LivePipeline:
    def __init__(
        self,
        settings: FraudscoreSettings,
        engine: Engine,
        merchants: SnapshotBook = NO_SNAPSHOTS,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._merchants = merchants
        self._configured: Scorer | None = None  # built when first needed
        self._loaded: dict[ArtefactRef, Scorer] = {}
        self._refused: set[ArtefactRef] = set()
        self._readable: bool | None = None
        self._ready: Pipeline | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = self._build(self._read() or _NOTHING, None)
        self.current = self._running.pipeline

    # --- the worker's side --------------------------------------------------------------------
    def take(self) -> Pipeline | None:
        """The new pipeline if one is ready since the last call, else None (no waiting)."""
        if self._ready is None:
            return None
        with self._lock:
            pipeline, self._ready = self._ready, None
        if pipeline is not None:
            self.current = pipeline
            log.info("now scoring with %s", describe(pipeline))
        return pipeline

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="registry-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._engine.dispose()

    # --- the watcher's side -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self._settings.registry_poll_ms / 1000):
            try:
                self.poll()
            except Exception:  # the watcher must outlive any surprise; the worker scores on
                log.exception("checking the registry failed; trying again")

    def poll(self) -> None:
        """Read the registry once; build and offer a new pipeline if its selection changed."""
        selection = self._read()
        if selection is None:
            return
        running, new = self._running, self._build(selection, self._running)
        if (new.model, new.shadow, new.pipeline.policy) == (
            running.model,
            running.shadow,
            running.pipeline.policy,
        ):
            return
        self._running = new
        with self._lock:
            self._ready = new.pipeline

    def _read(self) -> Selection | None:
        try:
            with Session(self._engine) as session:
                selection = read_selection(session)
        except SQLAlchemyError as exc:
            if self._readable is not False:
                log.log(
                    # never migrated is the zero-setup default, not a fault
                    logging.INFO if never_migrated(self._engine) else logging.WARNING,
                    "cannot read the model registry at %s (%s): scoring with what is loaded "
                    "(`fraudscore db upgrade` sets the registry up)",
                    self._engine.url.render_as_string(hide_password=True),
                    str(exc).splitlines()[0],
                )
            self._readable = False
            return None
        if self._readable is False:
            log.info("the model registry is readable again")
        self._readable = True
        return selection

    def _build(self, selection: Selection, running: _Running | None) -> _Running:
        model = self._model(selection.model, running)
        shadow = self._shadow(selection.shadow, running)
        scorer = self._configured_scorer() if model is None else self._loaded[model]
        pipeline = Pipeline(
            scorer=scorer,
            policy=selection.policy or configured_policy(self._settings),
            max_record_bytes=self._settings.max_record_bytes,
            params=self._settings.stream_params,
            shadow=None if shadow is None else self._loaded[shadow],
            merchants=self._merchants,
        )
        self._loaded = {ref: s for ref, s in self._loaded.items() if ref in (model, shadow)}
        return _Running(model, shadow, pipeline)

    def _model(self, wanted: ArtefactRef | None, running: _Running | None) -> ArtefactRef | None:
        """The active model to run: ``wanted``, or what runs if ``wanted`` is refused."""
        if wanted is None or self._load(wanted, "active"):
            return wanted
        return None if running is None else running.model

    def _shadow(self, wanted: ArtefactRef | None, running: _Running | None) -> ArtefactRef | None:
        if wanted is None or self._load(wanted, "shadow"):
            return wanted
        return None if running is None else running.shadow

    def _load(self, ref: ArtefactRef, role: str) -> bool:
        """Whether ``ref`` is loaded (now or before); False if it is refused."""
        if ref in self._loaded:
            return True
        if ref in self._refused:
            return False
        try:
            self._loaded[ref] = load_registered(ref)
        except (ArtefactError, OSError) as exc:
            self._refused.add(ref)
            log.error(
                "refusing the registry's %s model %s, keeping the one in use: %s",
                role,
                ref.version,
                exc,
            )
            return False
        log.info("loaded %s model %s from %s", role, ref.version, ref.path)
        return True

    def _configured_scorer(self) -> Scorer:
        if self._configured is None:
            self._configured = configured_scorer(self._settings)
        return self._configured
