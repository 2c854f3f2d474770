"""Deployment settings of the service, read in one place (environment + CLI flags).

Embedded mode (default): SQLite database, huey on SQLite, local storage, all under `data_dir`.
Scaled mode: `database_url` (PostgreSQL), `redis_url` (huey on Redis), `s3_*` (object storage).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "MOUTHPIECE_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str | None = None  # default: sqlite:///<data_dir>/service.db
    redis_url: str | None = None  # None → huey on SQLite under data_dir
    s3_endpoint: str | None = None  # None → local storage under data_dir/storage
    s3_bucket: str = "mouthpiece"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    secret_key: str | None = None  # JWT + URL signing; default: generated once in data_dir/secret.key
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600
    signed_url_ttl_s: int = 3600
    job_timeout_s: float = 300.0
    lease_s: float = 30.0  # a running job's lease; heartbeats renew it, the reaper re-queues on expiry
    max_attempts: int = 3
    shutdown_grace_s: float = 30.0  # on SIGTERM a worker finishes its job this long, then hands it back
    max_upload_bytes: int = 50 * 1024 * 1024
    workers: int = 1  # worker processes started by `mouthpiece serve`
    api_workers: int = 1  # API processes of `mouthpiece serve` (one port; shared rate limits)
    log_level: str = "info"  # of `mouthpiece serve`'s processes (API processes set theirs from it)
    rate_per_user: float = 20.0  # requests per second (token bucket) …
    rate_burst_user: int = 40
    rate_per_ip: float = 50.0
    rate_burst_ip: int = 100
    checkpoint_dir: Path | None = None  # registry root; default data_dir/checkpoints
    trust_dir: Path | None = None
    retention_days: float = 7.0
    webhook_allow_private: bool = False  # let jobs name webhooks on loopback/private addresses
    metrics_token: str | None = None  # bearer token a Prometheus scraper sends to /metrics (admins' tokens work too)
    metrics_port: int | None = None  # `serve` also serves /metrics without auth on 127.0.0.1:<port>
    extra: dict = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'service.db').resolve()}"

    @property
    def registry_root(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    def secret(self) -> bytes:
        """The signing secret: configured, or created once (0600) in the data directory."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.data_dir / f".secret.{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)  # atomic and refuses to overwrite: the first process wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()


def settings_from_env(**overrides) -> Settings:
    """Settings from MOUTHPIECE_* environment variables, then explicit overrides (CLI flags)."""
    values: dict = {}
    for name, spec in Settings.__dataclass_fields__.items():
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is None or name == "extra":
            continue
        kind = spec.type
        if str(kind) == "bool":
            values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif "Path" in str(kind):
            values[name] = Path(raw)
        elif "int" in str(kind) and "float" not in str(kind):
            values[name] = int(raw)
        elif "float" in str(kind):
            values[name] = float(raw)
        else:
            values[name] = raw
    settings = Settings(**values)
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
