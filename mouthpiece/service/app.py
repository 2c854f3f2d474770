"""`create_app(settings)`: the FastAPI application of the service, built on demand (never at import).

Layers, outermost first: request context (id, JSON access log, metrics, last-resort 500) →
guard (per-IP rate limit, body cap) → FastAPI (JSON errors, routes). The web page, when
`service/web/` exists, is served at `/` from the same origin as the API it uses.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mouthpiece.service.api import admin, auth, files, health, jobs, me
from mouthpiece.service.config import Settings
from mouthpiece.service.db import open_database
from mouthpiece.service.errors import install_error_handlers
from mouthpiece.service.metrics import metrics_dir
from mouthpiece.service.middleware import GuardMiddleware, RequestContextMiddleware
from mouthpiece.service.queue import make_huey
from mouthpiece.service.ratelimit import make_rate_limiter
from mouthpiece.service.services import build_services
from mouthpiece.service.supervisor import WorkerPool

WEB_DIR = Path(__file__).parent / "web"
API_VERSION = "1"


def app_from_env() -> FastAPI:
    """The app of one of several API processes (`mouthpiece serve --api-workers N`): settings
    from the environment that serve passed down; the job workers belong to serve itself."""
    from mouthpiece.service.config import settings_from_env
    from mouthpiece.service.logs import configure_logging

    settings = settings_from_env()
    configure_logging(logging.getLevelName(settings.log_level.upper()))
    logging.getLogger("uvicorn.access").propagate = False  # the service logs each request itself
    return create_app(settings, start_workers=False)


def prepare_shared_state(settings: Settings) -> None:
    """Create what several API processes would otherwise race to create: the tables, the queue,
    the signing secret, the shared rate-limit file, an empty folder for their metric values."""
    metrics = metrics_dir(settings)
    shutil.rmtree(metrics, ignore_errors=True)  # values of processes from an earlier run
    metrics.mkdir(parents=True)
    engine, _ = open_database(settings.db_url)
    engine.dispose()
    make_huey(settings)
    settings.secret()
    limiter = make_rate_limiter(settings)
    if hasattr(limiter, "close"):
        limiter.close()


def create_app(settings: Settings, *, start_workers: bool = False) -> FastAPI:
    """The API app for `settings`; with `start_workers`, also `settings.workers` worker processes
    for the app's lifetime (embedded mode: `mouthpiece serve`)."""
    services = build_services(settings)
    pool = WorkerPool(settings, settings.workers) if start_workers and settings.workers > 0 else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if pool is not None:
            pool.start()
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()
            services.engine.dispose()

    app = FastAPI(title="mouthpiece", version=API_VERSION, lifespan=lifespan,
                  description="Talking-head generation service: portrait + speech → lip-synced MP4.")
    app.state.services = services
    app.state.worker_pool = pool
    install_error_handlers(app)
    for module in (health, auth, me, jobs, files, admin):
        app.include_router(module.router)
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    app.add_middleware(GuardMiddleware, services=services)
    app.add_middleware(RequestContextMiddleware, services=services, router_app=app.router)
    return app
