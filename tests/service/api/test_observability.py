"""Probes, Prometheus metrics (request and job-table metrics), request ids, JSON logs, and the
JSON error shape for every 4xx/5xx, FastAPI's own included."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from sqlalchemy import text

from mouthpiece.service import jobstore, quotas
from mouthpiece.service.db import QuotaUsage
from mouthpiece.service.logs import JsonLogFormatter

from .conftest import SCRAPER, free_port, job_files


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "queue": "ok", "storage": "ok"}}


def test_readiness_names_an_unreachable_dependency(client, settings):
    storage = settings.data_dir / "storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.write_text("not a folder")  # the storage root is unusable
    ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["checks"]["storage"].startswith("unavailable")
    assert body["checks"]["database"] == "ok"


def _metric(body: str, prefix: str) -> float:
    lines = [line for line in body.splitlines() if line.startswith(prefix + " ")]
    assert lines, f"{prefix} not in metrics"
    return float(lines[0].rsplit(" ", 1)[1])


def test_metrics_cover_requests_jobs_and_refusals(client, app, user, user_headers, services, portrait_path,
                                                  espeak_speech):
    files = job_files(portrait_path, espeak_speech)
    first = client.post("/v1/jobs", headers=user_headers, files=files).json()["id"]
    second = client.post("/v1/jobs", headers=user_headers, files=files).json()["id"]
    client.get(f"/v1/jobs/{'0' * 32}", headers=user_headers)
    with services.sessions() as session:
        jobstore.claim(session, first, "w", 30.0)
        jobstore.fail(session, first, "w", "timeout", "ran too long")
        jobstore.claim(session, second, "w", 30.0)
        jobstore.fail(session, second, "w", "bad_input", "no face")
        session.merge(QuotaUsage(user_id=user.user_id, day=quotas.utc_day(), seconds=10_000.0))
        session.commit()
    third = client.post("/v1/jobs", headers=user_headers, files=files)
    assert third.status_code == 429
    metrics = client.get("/metrics", headers=SCRAPER)
    assert metrics.headers["content-type"].startswith("text/plain")
    body = metrics.text
    assert _metric(body, 'mouthpiece_http_requests_total{method="POST",route="/v1/jobs",status="202"}') == 2
    assert _metric(body, 'mouthpiece_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}') == 1
    assert _metric(body, 'mouthpiece_http_request_duration_seconds_count{method="POST",route="/v1/jobs"}') == 3
    assert 'mouthpiece_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/jobs"}' in body
    assert _metric(body, 'mouthpiece_job_failures_total{reason="timeout"}') == 1
    assert _metric(body, 'mouthpiece_job_failures_total{reason="bad_input"}') == 1
    assert _metric(body, 'mouthpiece_jobs{status="failed"}') == 2
    assert _metric(body, 'mouthpiece_job_duration_seconds_count{outcome="failed"}') == 2
    assert _metric(body, 'mouthpiece_quota_refusals_total{plan="basic",reason="daily_quota"}') == 1
    assert _metric(body, "mouthpiece_jobs_table_up") == 1


def test_queue_depth_by_priority(client, app, portrait_path, espeak_speech):
    from .conftest import bearer, new_account, sign_in

    files = job_files(portrait_path, espeak_speech)
    for plan in ("basic", "premium", "premium"):
        headers = bearer(sign_in(client, new_account(app, plan)))
        assert client.post("/v1/jobs", headers=headers, files=files).status_code == 202
    body = client.get("/metrics", headers=SCRAPER).text
    assert _metric(body, 'mouthpiece_queue_depth{priority="0"}') == 1
    assert _metric(body, 'mouthpiece_queue_depth{priority="5"}') == 2


def test_metrics_need_the_scrape_token_or_an_admin(client, app, settings, user_headers, admin_headers):
    """Metrics show every tenant's activity: no token → 401, a user's token → 403, a wrong
    scrape token → 401; the scrape token and an admin's access token read them."""
    refused = {"none": client.get("/metrics"),
               "wrong": client.get("/metrics", headers={"Authorization": "Bearer not-the-scrape-token"}),
               "user": client.get("/metrics", headers=user_headers)}
    assert {k: r.status_code for k, r in refused.items()} == {"none": 401, "wrong": 401, "user": 403}
    for response in refused.values():
        assert set(response.json()["error"]) == {"code", "message"}
        assert "mouthpiece_" not in response.text
    for headers in (SCRAPER, admin_headers):
        scraped = client.get("/metrics", headers=headers)
        assert scraped.status_code == 200 and "mouthpiece_jobs_table_up 1.0" in scraped.text


def test_without_a_scrape_token_only_admins_read_metrics(tmp_path, portrait_path):
    from fastapi.testclient import TestClient

    from mouthpiece.service.app import create_app

    from .conftest import bearer, make_settings, new_account, sign_in

    app = create_app(make_settings(tmp_path / "data", metrics_token=None))
    with TestClient(app) as client:
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/metrics", headers=SCRAPER).status_code == 401  # no token configured: none works
        admin = bearer(sign_in(client, new_account(app, "admin")))
        assert client.get("/metrics", headers=admin).status_code == 200


def test_guessing_the_scrape_token_is_rate_limited_per_address(tmp_path):
    from fastapi.testclient import TestClient

    from mouthpiece.service.app import create_app

    from .conftest import make_settings

    app = create_app(make_settings(tmp_path / "data", rate_per_ip=0.01, rate_burst_ip=3))
    with TestClient(app) as client:
        codes = [client.get("/metrics", headers={"Authorization": f"Bearer guess-{i}"}).status_code
                 for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        assert client.get("/metrics", headers=SCRAPER).status_code == 200  # the scraper is never starved


def test_metrics_on_a_loopback_only_port_need_no_token(client, services):
    import httpx

    from mouthpiece.service.metrics import serve_loopback

    port = free_port()
    server, thread = serve_loopback(services.metrics.scraped, port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        client.get("/healthz")
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert _metric(body, 'mouthpiece_http_requests_total{method="GET",route="/healthz",status="200"}') == 1
    assert _metric(body, "mouthpiece_jobs_table_up") == 1


def test_requests_carry_an_id_that_the_log_line_repeats(client, caplog):
    with caplog.at_level(logging.INFO, logger="mouthpiece.service.access"):
        response = client.get("/healthz")
        echoed = client.get("/healthz", headers={"X-Request-ID": "client-trace-0001"})
        hostile = client.get("/healthz", headers={"X-Request-ID": "x\u0000" * 10})
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert echoed.headers["x-request-id"] == "client-trace-0001"
    assert hostile.headers["x-request-id"] != "x\u0000" * 10
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == request_id)
    line = json.loads(JsonLogFormatter().format(record))
    assert line["request_id"] == request_id and line["route"] == "/healthz" and line["status"] == 200
    assert line["level"] == "info" and "duration_ms" in line


def test_every_error_is_json(client, user_headers):
    cases = [(client.get("/nope"), 404), (client.delete("/v1/jobs", headers=user_headers), 405),
             (client.get("/v1/jobs", params={"limit": 0}, headers=user_headers), 422),
             (client.get("/v1/jobs", params={"status": "lost"}, headers=user_headers), 422),
             (client.post("/v1/auth/refresh", content=b"{not json", headers={"Content-Type": "application/json"}), 422)]
    for response, status in cases:
        assert response.status_code == status
        assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"code", "message"}
    assert "limit" in cases[2][0].json()["error"]["message"]


def test_unexpected_failures_are_a_json_500_with_the_request_id(client, services, user_headers):
    with services.engine.begin() as connection:
        connection.execute(text("DROP TABLE jobs"))
    response = client.get("/v1/jobs", headers=user_headers)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert response.headers["x-request-id"] in response.json()["error"]["message"]
    assert "Traceback" not in response.text and "jobs" not in response.text


def test_openapi_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/auth/token", "/v1/jobs/{job_id}/events", "/metrics"} <= set(schema["paths"])
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["additionalProperties"] is False and "priority" not in body["properties"]
    assert body["properties"]["image"]["format"] == "binary"
    assert client.get("/docs").status_code == 200


def test_web_page_is_served_at_the_root_when_present(client):
    from mouthpiece.service.app import WEB_DIR

    if not (WEB_DIR / "index.html").is_file():
        pytest.skip("the web page (mouthpiece/service/web/) is not in this checkout")
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/no-such-page").json()["error"]["code"] == "not_found"
