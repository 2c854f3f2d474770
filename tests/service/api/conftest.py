"""Fixtures for the HTTP API tests: an app on a temporary data folder, accounts, signed-in clients.

`client` drives the app in-process (FastAPI's TestClient); `live_server` runs it under a real
uvicorn on a free loopback port for tests that need true concurrency. No workers run here, so
submitted jobs stay queued unless a test moves them on with the real `jobstore` functions.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from mouthpiece.service.app import create_app
from mouthpiece.service.config import Settings
from mouthpiece.service.users import create_user

GENEROUS = dict(rate_per_user=10_000.0, rate_burst_user=10_000, rate_per_ip=10_000.0, rate_burst_ip=10_000)
METRICS_TOKEN = "scrape-token-for-tests-0123456789"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # headers of a Prometheus scrape


def make_settings(data_dir: Path, **overrides) -> Settings:
    return replace(Settings(data_dir=data_dir, secret_key="api-test-secret-0123456789",
                            metrics_token=METRICS_TOKEN, **GENEROUS), **overrides)


@dataclass
class Account:
    user_id: str
    name: str
    plan: str
    api_key: str


def new_account(app, plan: str = "basic", name: str | None = None) -> Account:
    services = app.state.services
    with services.sessions() as session:
        name = name or f"{plan}-{time.monotonic_ns() % 10**12}"
        user, key = create_user(session, name, plan)
        session.commit()
    return Account(user.id, name, plan, key)


def sign_in(client, account: Account) -> dict:
    """Token pair of `account` (asserts success)."""
    response = client.post("/v1/auth/token", headers={"Authorization": f"Bearer {account.api_key}"})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def job_files(image: Path, audio: Path | None = None, **extra) -> dict:
    """Multipart `files=` for a submission (file names are ignored by the service)."""
    files = {"image": ("portrait.jpg", image.read_bytes(), "image/jpeg")}
    if audio is not None:
        files["audio"] = ("speech.wav", audio.read_bytes(), "audio/wav")
    files.update(extra)
    return files


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def services(app):
    return app.state.services


@pytest.fixture
def user(app) -> Account:
    return new_account(app, "basic")


@pytest.fixture
def user_headers(client, user) -> dict[str, str]:
    return bearer(sign_in(client, user))


@pytest.fixture
def admin(app) -> Account:
    return new_account(app, "admin")


@pytest.fixture
def admin_headers(client, admin) -> dict[str, str]:
    return bearer(sign_in(client, admin))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app under a real uvicorn in a background thread, on 127.0.0.1."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live_server(app):
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=60) as session:
        yield session
