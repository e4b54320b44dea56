"""The API application: its routes, its guard and its intake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from optout.server import (
    catalog_api,
    console,
    drp,
    plans_api,
    problems,
    reports_api,
    requests_api,
)
from optout.server.callbacks import Callbacks
from optout.server.intake import Intake
from optout.server.security import Guard
from optout.session import Session
from optout.worker.service import Worker, WorkerSettings

#: the largest request body the API reads (a request's identifiers, a report to verify)
MAX_BODY = 1 << 20


@dataclass
class ServerSettings:
    """How the server runs (the worker's settings hold where plans are written)."""

    worker: WorkerSettings
    max_body: int = MAX_BODY
    poll: float = 5.0


def create_app(session: Session, settings: ServerSettings) -> FastAPI:
    """The API over `session` (the server's own principal: it applies approved plans)."""
    session.catalog.threaded = True
    worker = Worker(session, settings.worker)
    callbacks = Callbacks(lambda rid: drp.status_of(session, rid))
    worker.publish = callbacks.publish  # status events go to the agents that asked for them
    intake = Intake(worker, settings.poll)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        intake.start()
        try:
            yield
        finally:
            intake.stop()
            callbacks.close()

    app = FastAPI(title="optout", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.session = session
    app.state.worker = worker
    app.state.intake = intake
    app.state.callbacks = callbacks
    app.state.plans = Path(settings.worker.plans_dir)
    problems.install(app)
    app.include_router(requests_api.router)
    app.include_router(plans_api.router)
    app.include_router(reports_api.router)
    app.include_router(drp.router)
    app.include_router(catalog_api.router)
    console.install(app)
    app.add_middleware(Guard, max_body=settings.max_body)
    return app
