"""The parts one API app works with, built once from Settings by `create_app` (never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from mouthpiece.service.auth import TokenConfig, VerifiedTokens, signing_key
from mouthpiece.service.config import Settings
from mouthpiece.service.db import open_database
from mouthpiece.service.errors import ApiError
from mouthpiece.service.metrics import Metrics, metrics_dir
from mouthpiece.service.queue import make_huey
from mouthpiece.service.ratelimit import Limit, RateLimiter, make_rate_limiter, retry_after_header
from mouthpiece.service.storage import Storage, make_storage
from mouthpiece.service.urls import UrlSigner
from mouthpiece.service.webhooks import Resolver, system_resolver


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    storage: Storage
    queue: object  # huey.Huey
    limiter: RateLimiter
    user_limit: Limit
    ip_limit: Limit
    tokens: TokenConfig
    verified_tokens: VerifiedTokens  # signature checks already done (never revocation)
    urls: UrlSigner
    metrics: Metrics
    # Short reads may run on the event loop itself: true for SQLite (a local file in WAL mode,
    # whose readers never wait for writers), false for a server database (network round trips).
    inline_reads: bool = False
    resolve_host: Resolver = system_resolver  # webhook host names → addresses (tests replace it)

    def throttle(self, kind: str, who: str) -> ApiError | None:
        """Take one request from the bucket of a user id (`kind` "user") or a client address
        ("ip"): None when it may pass, else the 429 to answer (counted in the metrics)."""
        limit = self.user_limit if kind == "user" else self.ip_limit
        wait = self.limiter.hit(f"{kind}:{who}", limit)
        if wait <= 0:
            return None
        self.metrics.rate_limited.labels(kind).inc()
        message = "too many requests; slow down" if kind == "user" else \
            "too many requests from this address; slow down"
        return ApiError(429, "rate_limited", message, retry_after_header(wait))


def build_services(settings: Settings) -> Services:
    """Connect to (and create, if needed) the database; set up storage, queue and limits."""
    engine, sessions = open_database(settings.db_url)
    secret = settings.secret()
    return Services(
        settings=settings, engine=engine, sessions=sessions, storage=make_storage(settings),
        queue=make_huey(settings), limiter=make_rate_limiter(settings),
        user_limit=Limit(settings.rate_per_user, settings.rate_burst_user),
        ip_limit=Limit(settings.rate_per_ip, settings.rate_burst_ip),
        tokens=TokenConfig.from_settings(settings), verified_tokens=VerifiedTokens(),
        urls=UrlSigner(signing_key(secret, "download-url"), settings.signed_url_ttl_s),
        metrics=Metrics(sessions, metrics_dir(settings) if settings.api_workers > 1 else None),
        inline_reads=engine.dialect.name == "sqlite")
