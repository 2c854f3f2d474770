"""Rate limits: token buckets per user and per IP, 429 + Retry-After, in-process and shared in Redis."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from mouthpiece.service.app import create_app
from mouthpiece.service.ratelimit import Limit, MemoryRateLimiter, RedisRateLimiter

from .conftest import GENEROUS, SCRAPER, bearer, make_settings, new_account, sign_in


def test_memory_bucket_allows_burst_then_refills():
    limiter, limit = MemoryRateLimiter(), Limit(rate=10.0, burst=3)
    assert [limiter.hit("k", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.hit("k", limit)
    assert 0 < wait <= 0.1 + 1e-6
    assert limiter.hit("other", limit) == 0.0  # buckets are per key
    time.sleep(wait + 0.02)
    assert limiter.hit("k", limit) == 0.0


def _app(tmp_path, **limits):
    settings = make_settings(tmp_path / "data", **{**GENEROUS, **limits})
    return create_app(settings)


def test_per_user_limit_gives_429_with_retry_after(tmp_path):
    app = _app(tmp_path, rate_per_user=0.1, rate_burst_user=3)
    with TestClient(app) as client:
        slow, other = new_account(app), new_account(app)
        headers, other_headers = bearer(sign_in(client, slow)), bearer(sign_in(client, other))
        assert [client.get("/v1/me", headers=headers).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/v1/me", headers=headers)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        assert client.get("/v1/me", headers=other_headers).status_code == 200  # another user is unaffected
        metrics = client.get("/metrics", headers=SCRAPER).text
    assert 'mouthpiece_rate_limited_total{scope="user"} 1.0' in metrics


def test_per_ip_limit_covers_unauthenticated_requests(tmp_path):
    app = _app(tmp_path, rate_per_ip=0.1, rate_burst_ip=4)
    with TestClient(app) as client:
        codes = [client.post("/v1/auth/token", headers={"Authorization": "Bearer guess"}).status_code
                 for _ in range(6)]
        assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
        refused = client.get("/v1/jobs")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
        assert client.get("/healthz").status_code == 200  # probes are never limited


def test_redis_bucket_is_shared_by_api_processes(tmp_path, redis_url):
    """Two apps (as two API processes would) share one user's bucket through Redis."""
    limits = dict(rate_per_user=0.1, rate_burst_user=4, redis_url=redis_url)
    first = create_app(make_settings(tmp_path / "data", **{**GENEROUS, **limits}))
    second = create_app(make_settings(tmp_path / "data", **{**GENEROUS, **limits}))  # same DB and secret
    with TestClient(first) as one, TestClient(second) as two:
        account = new_account(first)
        headers = bearer(sign_in(one, account))
        codes = [(one if i % 2 else two).get("/v1/me", headers=headers).status_code for i in range(6)]
        assert codes == [200] * 4 + [429] * 2
        refused = one.get("/v1/me", headers=headers)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_redis_limiter_refills_by_the_redis_clock(redis_url):
    limiter, limit = RedisRateLimiter(redis_url), Limit(rate=20.0, burst=2)
    assert [limiter.hit("k", limit) for _ in range(2)] == [0.0, 0.0]
    wait = limiter.hit("k", limit)
    assert 0 < wait <= 0.05 + 1e-6
    time.sleep(wait + 0.03)
    assert limiter.hit("k", limit) == 0.0


def test_unreachable_redis_is_503_not_500(tmp_path):
    from tests.service.servers import free_port

    app = _app(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(app) as client:
        response = client.get("/v1/jobs")
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
