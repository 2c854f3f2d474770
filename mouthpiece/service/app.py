"""`create_app(settings)`: the FastAPI application of the service, built on demand (never at import).

Layers, outermost first: request context (id, JSON access log, metrics, last-resort 500) →
guard (per-IP rate limit, body cap) → FastAPI (JSON errors, routes). The web page, when
`service/web/` exists, is served at `/` from the same origin as the API it uses.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mouthpiece.service.api import admin, auth, files, health, jobs, me
from mouthpiece.service.config import Settings
from mouthpiece.service.errors import install_error_handlers
from mouthpiece.service.middleware import GuardMiddleware, RequestContextMiddleware
from mouthpiece.service.services import build_services
from mouthpiece.service.supervisor import WorkerPool

WEB_DIR = Path(__file__).parent / "web"
API_VERSION = "1"


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
