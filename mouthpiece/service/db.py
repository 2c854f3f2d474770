"""The service's database: SQLAlchemy models and engine set-up (SQLite embedded, PostgreSQL scaled).

The `jobs` table is the source of truth for job state; the queue only carries job ids.
Times are UTC epoch seconds (floats) so lease arithmetic is the same on every backend. Lease
times (and a job's start and end) come from the database's clock (`db_now()`, evaluated inside
the UPDATE that uses it), so workers on hosts whose clocks disagree still agree on expiry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
ACTIVE_STATUSES = ("queued", "running")


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


class db_now(FunctionElement):  # noqa: N801 (reads as the SQL function it stands for)
    """The database server's clock as UTC epoch seconds (float), read by the statement itself."""
    type = Float()
    inherit_cache = True


@compiles(db_now, "sqlite")
def _sqlite_now(_element, _compiler, **_kw) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"  # days since the Julian epoch → Unix s


@compiles(db_now, "postgresql")
def _postgresql_now(_element, _compiler, **_kw) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    plan: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` (public) finds the row."""
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RefreshToken(Base):
    """A refresh token (hash only). Rotated on use; reuse of a used one revokes its family."""
    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_job_idempotency"),
        Index("ix_jobs_status_priority", "status", "priority", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="audio")  # audio | text
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # validated, whitelisted generation params
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)  # role → storage key (image, audio, voice) + text
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    charged_s: Mapped[float] = mapped_column(Float, default=0.0)  # seconds of video reserved from quota
    charged_day: Mapped[str] = mapped_column(String(10), default="")  # UTC day the charge belongs to
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    checkpoint: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {ref, sha256, route}; kept on retry
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {video_key, frames, fps, …}
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_s: Mapped[float] = mapped_column(Float, default=300.0)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    purged_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # files deleted by retention


class QuotaUsage(Base):
    """Seconds of video reserved per user per UTC day; updated with one conditional UPDATE."""
    __tablename__ = "quota_usage"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Setting(Base):
    """Small service-wide settings changed at run time (e.g. the canary route)."""
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


# More connections than the API's request threads (anyio's default limiter: 40), so a thread
# never waits for a connection held by threads that wait for a thread (a pool deadlock seen
# under mixed submit/status load with SQLAlchemy's default 5 + 10).
POOL_SIZE, POOL_OVERFLOW = 16, 48


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the
            # process loses nothing and the file never corrupts, but a power cut or OS crash
            # may lose the last commits (jobs already answered 202). docs/jobs.md says so.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    return engine


def init_db(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def open_database(url: str) -> tuple[Engine, sessionmaker]:
    """Connect to `url`, create missing tables, and return (engine, session factory)."""
    engine = make_engine(url)
    init_db(engine)
    return engine, session_factory(engine)


@contextmanager
def one_session(url: str) -> Iterator[Session]:
    """A session on a database opened for one short command; the engine is disposed after."""
    engine, sessions = open_database(url)
    try:
        with sessions() as session:
            yield session
    finally:
        engine.dispose()
