"""What the API holds while it runs, opened and closed by the application's lifespan: the
registry database's engine, the label producer and the directory of card-partition
owners. Nothing is opened at import time.

Endpoints get them through the dependencies at the end (``ResourcesDep``, ``SettingsDep``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.publisher import LabelPublisher
from app.card_owner import OwnerDirectory, WorkerClient
from app.db.engine import create_db_engine
from app.db.migration import head_revision
from app.db.session import checked_session
from app.settings import FraudscoreSettings


@dataclass(frozen=True, slots=True)
class Resources:
    settings: FraudscoreSettings
    engine: Engine
    head: str | None  # this build's schema revision: the registry database must be at it
    labels: LabelPublisher
    owners: OwnerDirectory  # which worker owns a card's partition
    workers: WorkerClient  # asking it

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A registry session, committed at the end of the block (blocking: call it from a
        sync endpoint, which FastAPI runs in a thread)."""
        with checked_session(self.engine, self.head) as session:
            yield session

    def check_ready(self) -> None:
        """Raise unless the registry database answers at this build's schema (blocking)."""
        with checked_session(self.engine, self.head):
            pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: FraudscoreSettings = app.state.settings
    engine = create_db_engine(settings)
    labels = LabelPublisher(settings)
    owners = OwnerDirectory(settings)
    workers = WorkerClient(settings.api_forward_timeout_ms / 1000)
    app.state.resources = Resources(
        settings, engine, head_revision(engine), labels, owners, workers
    )
    try:
        yield
    finally:
        await workers.close()
        await labels.close()
        engine.dispose()


# async: FastAPI runs a sync dependency in a pool thread, a hop per request for a lookup
async def _resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def _settings(request: Request) -> FraudscoreSettings:
    settings: FraudscoreSettings = request.app.state.settings
    return settings


ResourcesDep = Annotated[Resources, Depends(_resources)]
SettingsDep = Annotated[FraudscoreSettings, Depends(_settings)]
