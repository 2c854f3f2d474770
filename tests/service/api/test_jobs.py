"""Job submission, whitelist, plan limits, idempotency, concurrency and quota (incl. a 20-way race),
status, cancel, list, server-sent events, and tenant isolation."""

from __future__ import annotations

import io
import json
import threading
import time
import wave

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from mouthpiece.service import jobstore, quotas
from mouthpiece.service.db import Job, QuotaUsage, User
from mouthpiece.service.plans import PLANS

from .conftest import bearer, job_files, new_account, sign_in


def _submit(client, headers, image, audio=None, data=None, extra_headers=None, **files):
    return client.post("/v1/jobs", headers={**headers, **(extra_headers or {})},
                       files=job_files(image, audio, **files), data=data or {})


def _stored(settings) -> list[str]:
    root = settings.data_dir / "storage"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _job_count(services) -> int:
    with services.sessions() as session:
        return session.execute(select(func.count()).select_from(Job)).scalar_one()


def _used(services, user_id) -> float:
    with services.sessions() as session:
        return quotas.used_seconds(session, user_id)


def _wav_seconds(path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_submit_stores_the_checked_uploads_and_reserves_quota(client, user, user_headers, services, settings,
                                                              portrait_path, espeak_speech, tmp_path):
    response = _submit(client, user_headers, portrait_path, espeak_speech, data={"fps": "30", "seed": "5"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["queue_position"] == 1
    prefix = f"tenants/{user.user_id}/jobs/{body['id']}/"
    # stored as sent, under generated names only the worker reads (it decodes them before the engine)
    assert _stored(settings) == [prefix + "audio.upload", prefix + "image.upload"]
    stored = settings.data_dir / "storage" / prefix
    assert (stored / "image.upload").read_bytes() == portrait_path.read_bytes()
    assert (stored / "audio.upload").read_bytes() == espeak_speech.read_bytes()
    speech_s = _wav_seconds(espeak_speech)
    assert _used(services, user.user_id) == pytest.approx(speech_s, abs=0.02)
    with services.sessions() as session:
        job = session.get(Job, body["id"])
    assert job.priority == PLANS["basic"].priority and job.params["fps"] == 30 and job.params["seed"] == 5
    assert job.charged_s == pytest.approx(speech_s, abs=0.02)
    assert job.inputs["limits"]["audio_max_s"] == PLANS["basic"].max_duration_s
    assert job.inputs["limits"]["audio_s"] == pytest.approx(speech_s, abs=1e-3)

    # what the worker's engine child does with them before the engine runs: decode + re-encode
    from mouthpiece.service.intake import clean_inputs

    clean = clean_inputs({"image": str(stored / "image.upload"), "audio": str(stored / "audio.upload")},
                         job.inputs["limits"], tmp_path)
    assert Image.open(clean["image"]).format == "PNG"
    with wave.open(clean["audio"]) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
    assert _wav_seconds(clean["audio"]) == pytest.approx(speech_s, abs=0.02)

    status = client.get(f"/v1/jobs/{body['id']}", headers=user_headers).json()
    assert status["status"] == "queued" and status["progress"] == 0.0 and status["result"] is None
    assert "motion" not in status["params"] and status["params"]["fps"] == 30


@pytest.mark.parametrize("field", ["priority", "plan", "checkpoint", "motion", "user_id", "timeout_s",
                                   "output_name", "../image"])
def test_fields_outside_the_whitelist_are_refused_by_name(client, user_headers, services, settings,
                                                         portrait_path, espeak_speech, field):
    response = _submit(client, user_headers, portrait_path, espeak_speech, data={field: "1"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_field" and repr(field) in error["message"]
    assert _stored(settings) == [] and _job_count(services) == 0


def test_an_unknown_file_field_is_refused_too(client, user_headers, settings, portrait_path, espeak_speech):
    response = _submit(client, user_headers, portrait_path, espeak_speech,
                       checkpoint=("model.safetensors", b"\0" * 64, "application/octet-stream"))
    assert response.status_code == 422 and "'checkpoint'" in response.json()["error"]["message"]
    assert _stored(settings) == []


@pytest.mark.parametrize("data, code, needle", [
    ({"fps": "500"}, 422, "fps"),
    ({"min_resolution": "500"}, 422, "min_resolution"),
    ({"expand_ratio": "nan"}, 422, "expand_ratio"),
    ({"seed": "-1"}, 422, "seed"),
    ({"pad": "maybe"}, 422, "pad"),
    ({"min_resolution": "1024"}, 403, "plan"),  # allowed by the engine, not by the basic plan
    ({"duration": "120", "pad": "true"}, 422, "duration"),  # over the basic plan's 60 s
    ({"duration": "9", "trim": "true", "pad": "true"}, 422, "pad"),
    ({"duration": "9"}, 422, "pad"),  # longer than the audio without pad
    ({"webhook_url": "file:///etc/passwd"}, 422, "webhook_url"),
])
def test_bad_or_over_plan_params_are_refused(client, user, user_headers, services, settings, portrait_path,
                                             espeak_speech, data, code, needle):
    response = _submit(client, user_headers, portrait_path, espeak_speech, data=data)
    assert response.status_code == code, response.text
    assert needle in response.json()["error"]["message"]
    assert _stored(settings) == [] and _job_count(services) == 0
    assert _used(services, user.user_id) == 0


def test_a_repeated_field_is_refused(client, user_headers, portrait_path, espeak_speech):
    response = client.post("/v1/jobs", headers=user_headers, files=job_files(portrait_path, espeak_speech),
                           data={"fps": ["25", "30"]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "repeated_field"


@pytest.mark.parametrize("data, with_audio", [({"text": "hello"}, True), ({}, False)])
def test_exactly_one_of_audio_or_text(client, user_headers, portrait_path, espeak_speech, data, with_audio):
    response = _submit(client, user_headers, portrait_path, espeak_speech if with_audio else None, data=data)
    assert response.status_code == 422 and "exactly one" in response.json()["error"]["message"]


def test_non_multipart_submission_is_415(client, user_headers):
    response = client.post("/v1/jobs", headers=user_headers, json={"text": "hi"})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


def test_text_job_with_voice_reserves_an_estimate(client, user, user_headers, services, settings,
                                                  portrait_path, espeak_speech):
    text = "Hello there, how are you today?"
    response = client.post("/v1/jobs", headers=user_headers, data={"text": text, "lang": "en"}, files={
        "image": ("p.jpg", portrait_path.read_bytes(), "image/jpeg"),
        "voice": ("v.wav", espeak_speech.read_bytes(), "audio/wav")})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with services.sessions() as session:
        job = session.get(Job, job_id)
    assert job.kind == "text" and job.inputs["text"] == text and job.inputs["lang"] == "en"
    assert set(job.inputs) == {"image", "voice", "text", "lang", "limits"}
    assert job.charged_s >= 2.0  # ~31 characters of English: a generous estimate of ~2 s of speech
    assert _used(services, user.user_id) == pytest.approx(job.charged_s)
    prefix = f"tenants/{user.user_id}/jobs/{job_id}/"
    assert _stored(settings) == [prefix + "image.upload", prefix + "voice.upload"]


def test_text_longer_than_the_plan_allows_is_refused(client, user_headers, services, portrait_path):
    response = client.post("/v1/jobs", headers=user_headers, data={"text": "word " * 300},
                           files=job_files(portrait_path))
    assert response.status_code == 403 and response.json()["error"]["code"] == "plan_limit"
    assert _job_count(services) == 0


def test_idempotency_key_returns_the_same_job_once(client, user, user_headers, services, portrait_path,
                                                   espeak_speech):
    key = {"Idempotency-Key": "order-42"}
    first = _submit(client, user_headers, portrait_path, espeak_speech, data={"seed": "1"}, extra_headers=key)
    again = _submit(client, user_headers, portrait_path, espeak_speech, data={"seed": "1"}, extra_headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _job_count(services) == 1
    assert _used(services, user.user_id) == pytest.approx(_wav_seconds(espeak_speech), abs=0.02)
    conflict = _submit(client, user_headers, portrait_path, espeak_speech, data={"seed": "2"}, extra_headers=key)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert _job_count(services) == 1


def test_idempotency_keys_are_per_user(client, app, user_headers, portrait_path, espeak_speech):
    other = bearer(sign_in(client, new_account(app)))
    key = {"Idempotency-Key": "same-key"}
    mine = _submit(client, user_headers, portrait_path, espeak_speech, extra_headers=key).json()["id"]
    theirs = _submit(client, other, portrait_path, espeak_speech, extra_headers=key).json()["id"]
    assert mine != theirs


def test_bad_idempotency_key_is_422(client, user_headers, portrait_path, espeak_speech):
    response = _submit(client, user_headers, portrait_path, espeak_speech,
                       extra_headers={"Idempotency-Key": "x" * 129})
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["error"]["message"]


def test_concurrent_job_limit(client, user, user_headers, services, settings, portrait_path, espeak_speech):
    limit = PLANS["basic"].concurrent_jobs
    for _ in range(limit):
        assert _submit(client, user_headers, portrait_path, espeak_speech).status_code == 202
    refused = _submit(client, user_headers, portrait_path, espeak_speech)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_jobs"
    assert int(refused.headers["retry-after"]) >= 1
    assert _job_count(services) == limit and len(_stored(settings)) == 2 * limit


def test_daily_quota_is_enforced_and_refunded_on_cancel(client, user, user_headers, services, settings,
                                                        portrait_path, espeak_speech):
    limit = PLANS["basic"].daily_video_s
    with services.sessions() as session:
        session.add(QuotaUsage(user_id=user.user_id, day=quotas.utc_day(), seconds=limit - 1.0))
        session.commit()
    refused = _submit(client, user_headers, portrait_path, espeak_speech)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused.headers["retry-after"]) <= 86400
    assert _stored(settings) == [] and _used(services, user.user_id) == limit - 1.0
    with services.sessions() as session:
        session.execute(QuotaUsage.__table__.update().values(seconds=0.0))
        session.commit()
    job_id = _submit(client, user_headers, portrait_path, espeak_speech).json()["id"]
    assert _used(services, user.user_id) > 0
    canceled = client.post(f"/v1/jobs/{job_id}/cancel", headers=user_headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert _used(services, user.user_id) == pytest.approx(0.0, abs=1e-9)
    again = client.post(f"/v1/jobs/{job_id}/cancel", headers=user_headers)  # refunded once only
    assert again.json()["status"] == "canceled" and _used(services, user.user_id) == pytest.approx(0.0, abs=1e-9)


def test_cancel_of_a_running_job_is_requested(client, user_headers, services, portrait_path, espeak_speech):
    job_id = _submit(client, user_headers, portrait_path, espeak_speech).json()["id"]
    with services.sessions() as session:
        assert jobstore.claim(session, job_id, "test-worker", 30.0) is not None
    body = client.post(f"/v1/jobs/{job_id}/cancel", headers=user_headers).json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_list_shows_only_own_jobs_newest_first(client, app, user_headers, portrait_path, espeak_speech):
    other = bearer(sign_in(client, new_account(app)))
    first = _submit(client, user_headers, portrait_path, espeak_speech).json()["id"]
    second = _submit(client, user_headers, portrait_path, espeak_speech).json()["id"]
    _submit(client, other, portrait_path, espeak_speech)
    client.post(f"/v1/jobs/{first}/cancel", headers=user_headers)
    listing = client.get("/v1/jobs", headers=user_headers).json()
    assert [j["id"] for j in listing["jobs"]] == [second, first] and listing["total"] == 2
    queued = client.get("/v1/jobs", params={"status": "queued"}, headers=user_headers).json()
    assert [j["id"] for j in queued["jobs"]] == [second]
    page = client.get("/v1/jobs", params={"limit": 1, "offset": 1}, headers=user_headers).json()
    assert [j["id"] for j in page["jobs"]] == [first]


def test_another_tenants_job_is_404_everywhere(client, app, user_headers, portrait_path, espeak_speech):
    other = bearer(sign_in(client, new_account(app)))
    job_id = _submit(client, other, portrait_path, espeak_speech).json()["id"]
    for method, path in (("GET", f"/v1/jobs/{job_id}"), ("POST", f"/v1/jobs/{job_id}/cancel"),
                         ("GET", f"/v1/jobs/{job_id}/events")):
        response = client.request(method, path, headers=user_headers)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/jobs/{job_id}", headers=other).json()["status"] == "queued"  # untouched


@pytest.mark.parametrize("job_id", ["..%2F..%2Fservice.db", "00000000000000000000000000000000",
                                    "ZZZZ", "%2e%2e"])
def test_malformed_or_unknown_job_ids_are_404(client, user_headers, job_id):
    response = client.get(f"/v1/jobs/{job_id}", headers=user_headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_events_stream_follows_the_job_to_its_end(client, user_headers, services, portrait_path, espeak_speech):
    job_id = _submit(client, user_headers, portrait_path, espeak_speech).json()["id"]

    def work() -> None:  # a worker's life cycle, with the real jobstore transitions
        time.sleep(0.8)
        with services.sessions() as session:
            jobstore.claim(session, job_id, "w", 30.0)
            time.sleep(0.8)
            jobstore.heartbeat(session, job_id, "w", 30.0, 0.5)
            time.sleep(0.8)
            jobstore.fail(session, job_id, "w", "bad_input", "no face found")

    thread = threading.Thread(target=work)
    thread.start()
    events = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=user_headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    thread.join()
    states = [(e["status"], e["progress"]) for e in events]
    assert states[0] == ("queued", 0.0)
    assert ("running", 0.5) in states
    assert events[-1]["status"] == "failed"
    assert events[-1]["error"] == {"code": "bad_input", "message": "no face found"}


@pytest.fixture(params=["sqlite", "postgres"])
def race(request, tmp_path):
    """(app, httpx client) on a real uvicorn, with a SQLite file or a PostgreSQL database."""
    from mouthpiece.service.app import create_app

    from .conftest import LiveServer, make_settings

    database = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    app = create_app(make_settings(tmp_path / "data", database_url=database))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        yield app, http


def _race(http, headers, files, n: int = 20) -> list[httpx.Response]:
    """`n` threads post the same submission at the same instant."""
    barrier = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        response = http.post("/v1/jobs", headers=headers, files=files)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _token_headers(http, account) -> dict[str, str]:
    return bearer(http.post("/v1/auth/token", headers={"Authorization": f"Bearer {account.api_key}"}).json())


def test_twenty_racing_submissions_never_overspend(race, portrait_path, espeak_speech):
    """20 threads submit at once for one admin (8 concurrent jobs allowed) whose quota has room for
    exactly 5 jobs: 5 accepted, 15 refused, usage exactly 5 jobs' worth."""
    app, http = race
    services = app.state.services
    account = new_account(app, "admin")
    speech_s = round(_wav_seconds(espeak_speech), 3)
    plan = PLANS["admin"]
    start = plan.daily_video_s - 5 * speech_s - 0.5 * speech_s  # room for 5 jobs, not 6
    with services.sessions() as session:
        session.add(QuotaUsage(user_id=account.user_id, day=quotas.utc_day(), seconds=start))
        session.commit()
    results = _race(http, _token_headers(http, account), job_files(portrait_path, espeak_speech))
    codes = sorted(r.status_code for r in results)
    assert codes == [202] * 5 + [429] * 15, [r.text for r in results if r.status_code not in (202, 429)]
    assert {r.json()["error"]["code"] for r in results if r.status_code == 429} == {"quota_exceeded"}
    used = _used(services, account.user_id)
    assert used <= plan.daily_video_s
    with services.sessions() as session:
        charged = session.execute(select(func.sum(Job.charged_s)).where(Job.user_id == account.user_id)).scalar_one()
    assert _job_count(services) == 5
    assert used == pytest.approx(start + charged, abs=1e-6)
    assert charged == pytest.approx(5 * speech_s, abs=0.05)


def test_twenty_racing_submissions_respect_the_concurrent_job_limit(race, portrait_path, espeak_speech):
    app, http = race
    services = app.state.services
    account = new_account(app, "basic")
    results = _race(http, _token_headers(http, account), job_files(portrait_path, espeak_speech))
    limit = PLANS["basic"].concurrent_jobs
    assert sorted(r.status_code for r in results) == [202] * limit + [429] * (20 - limit)
    assert _job_count(services) == limit
    root = services.settings.data_dir / "storage"
    assert len([p for p in root.rglob("*") if p.is_file()]) == 2 * limit  # refused ones left no files
    with services.sessions() as session:
        charged = session.execute(select(func.sum(Job.charged_s))).scalar_one()
    assert _used(services, account.user_id) == pytest.approx(charged, abs=1e-6)


def test_wrong_sized_audio_for_the_plan_is_refused(client, user_headers, services, settings, portrait_path,
                                                   tmp_path):
    long_wav = tmp_path / "long.wav"
    samples = (0.1 * np.sin(np.arange(16000 * 70) * 0.05) * 32767).astype("<i2")  # 70 s > 60 s plan max
    with wave.open(str(long_wav), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.tobytes())
    response = _submit(client, user_headers, portrait_path, long_wav)
    assert response.status_code == 422 and "audio" in response.json()["error"]["message"]
    assert _stored(settings) == [] and _job_count(services) == 0


def test_upload_file_names_never_reach_storage(client, user, user_headers, settings, portrait_path, espeak_speech):
    response = client.post("/v1/jobs", headers=user_headers, files={
        "image": ("../../../../etc/passwd", portrait_path.read_bytes(), "image/jpeg"),
        "audio": ("..\\..\\service.db", espeak_speech.read_bytes(), "audio/wav")})
    assert response.status_code == 202
    job_id = response.json()["id"]
    prefix = f"tenants/{user.user_id}/jobs/{job_id}/"
    assert _stored(settings) == [prefix + "audio.upload", prefix + "image.upload"]
    assert not (settings.data_dir / "etc").exists()


def test_transparent_png_portrait_is_flattened_to_rgb(client, user, user_headers, settings, espeak_speech,
                                                      tmp_path):
    from mouthpiece.service.intake import clean_inputs

    portrait = io.BytesIO()
    Image.new("RGBA", (96, 96), (200, 150, 120, 128)).save(portrait, format="PNG")
    response = client.post("/v1/jobs", headers=user_headers, files={
        "image": ("p.png", portrait.getvalue(), "image/png"),
        "audio": ("a.wav", espeak_speech.read_bytes(), "audio/wav")})
    assert response.status_code == 202
    stored = settings.data_dir / "storage" / f"tenants/{user.user_id}/jobs/{response.json()['id']}/image.upload"
    clean = clean_inputs({"image": str(stored)}, {}, tmp_path)  # the worker's step before the engine
    assert Image.open(clean["image"]).mode == "RGB"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook",
                                 "http://169.254.169.254/latest/meta-data", "http://10.0.0.7/hook",
                                 "http://user:pw@93.184.216.34/hook", "http://no-such-host.invalid/hook"])
def test_webhooks_into_private_networks_are_refused(client, user_headers, services, portrait_path,
                                                    espeak_speech, url):
    response = _submit(client, user_headers, portrait_path, espeak_speech, data={"webhook_url": url})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_webhook"
    assert _job_count(services) == 0


@pytest.mark.parametrize("answer, status", [(["127.0.0.1"], 422), (["93.184.216.34", "10.1.2.3"], 422),
                                            (["93.184.216.34"], 202)])
def test_webhook_host_names_are_vetted_by_what_they_resolve_to(client, user_headers, services, portrait_path,
                                                               espeak_speech, answer, status):
    services.resolve_host = lambda host, port: answer if host == "hooks.example.test" else []  # no real DNS
    response = _submit(client, user_headers, portrait_path, espeak_speech,
                       data={"webhook_url": "https://hooks.example.test/hook"})
    assert response.status_code == status, response.text
    assert _job_count(services) == (1 if status == 202 else 0)


def test_public_webhook_is_kept_with_the_job(client, user_headers, services, portrait_path, espeak_speech):
    url = "https://93.184.216.34/hooks/mouthpiece"  # a literal public address: no DNS needed
    response = _submit(client, user_headers, portrait_path, espeak_speech, data={"webhook_url": url})
    assert response.status_code == 202, response.text
    with services.sessions() as session:
        assert session.get(Job, response.json()["id"]).webhook_url == url


def test_private_webhooks_when_the_operator_allows_them(tmp_path, portrait_path, espeak_speech):
    from fastapi.testclient import TestClient

    from mouthpiece.service.app import create_app

    from .conftest import make_settings

    app = create_app(make_settings(tmp_path / "data", webhook_allow_private=True))
    with TestClient(app) as client:
        headers = bearer(sign_in(client, new_account(app)))
        response = _submit(client, headers, portrait_path, espeak_speech,
                           data={"webhook_url": "http://127.0.0.1:8080/hook"})
    assert response.status_code == 202


@pytest.mark.parametrize("plan_name, expect_ok", [("basic", 2), ("admin", 8)])
def test_insert_transaction_is_atomic_under_a_20_way_race(race, plan_name, expect_ok):
    """The submit transaction itself (idempotency, concurrent-job limit, quota, insert), entered by
    20 threads at one instant with no upload decoding to stagger them."""
    from mouthpiece.params import GenerationParams
    from mouthpiece.service.errors import ApiError
    from mouthpiece.service.plans import plan_named
    from mouthpiece.service.submission import PreparedJob, insert_job

    app, _ = race
    services = app.state.services
    account = new_account(app, plan_name)
    plan = plan_named(plan_name)
    with services.sessions() as session:
        user = session.get(User, account.user_id)
    prepared = PreparedJob("audio", GenerationParams(seed=1), {}, {}, charged_s=2.0)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def one(index: int) -> None:
        barrier.wait()
        with services.sessions() as session:
            try:
                insert_job(session, user=user, plan=plan, job_id=f"{index:032x}", prepared=prepared, inputs={},
                           idempotency_key=None, request_hash="h", timeout_s=60.0, webhook_url=None)
                outcomes.append("ok")
            except ApiError as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == expect_ok == plan.concurrent_jobs
    assert set(outcomes) == {"ok", "too_many_jobs"}
    assert _job_count(services) == expect_ok
    assert _used(services, account.user_id) == pytest.approx(2.0 * expect_ok)
