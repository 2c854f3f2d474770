"""Downloads only through expiring HMAC-signed links: a finished job's link works, and a tampered,
stretched, expired, re-pointed or traversal link does not (OWASP API1/API5). Invalid links read
as 404 (nothing revealed); a genuine but expired one as 403."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mouthpiece.service import jobstore
from mouthpiece.service.storage import job_key

from .conftest import bearer, job_files, new_account, sign_in

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64  # stands in for an MP4: bytes are compared


def _finished_job(client, services, headers, user_id, portrait_path, espeak_speech) -> str:
    """Submit through the API, then take the job through the real jobstore transitions."""
    job_id = client.post("/v1/jobs", headers=headers, files=job_files(portrait_path, espeak_speech)).json()["id"]
    with services.sessions() as session:
        assert jobstore.claim(session, job_id, "w", 30.0) is not None
        services.storage.put_bytes(job_key(user_id, job_id, "result.mp4"), VIDEO)
        assert jobstore.succeed(session, job_id, "w", {
            "video_key": job_key(user_id, job_id, "result.mp4"), "frames": 50, "fps": 25, "duration_s": 2.0,
            "resolution": [512, 600], "warnings": ["fps=30 is outside the recommended range 25–25"]})
    return job_id


@pytest.fixture
def finished(client, services, user, user_headers, portrait_path, espeak_speech):
    job_id = _finished_job(client, services, user_headers, user.user_id, portrait_path, espeak_speech)
    status = client.get(f"/v1/jobs/{job_id}", headers=user_headers).json()
    return job_id, status


def _path_and_query(url: str) -> tuple[str, dict]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_finished_job_has_a_working_signed_link(client, finished):
    job_id, status = finished
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    result = status["result"]
    assert result["frames"] == 50 and result["resolution"] == [512, 600] and len(result["warnings"]) == 1
    path, query = _path_and_query(result["video_url"])
    assert path == f"/v1/files/{job_id}/result.mp4" and int(query["expires"]) == result["expires_at"]
    response = client.get(result["video_url"])  # no Authorization: the link is the credential
    assert response.status_code == 200 and response.content == VIDEO
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_tampered_signature_is_refused(client, finished):
    path, query = _path_and_query(finished[1]["result"]["video_url"])
    flipped = ("A" if query["sig"][0] != "A" else "B") + query["sig"][1:]
    response = client.get(path, params={**query, "sig": flipped})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_stretched_expiry_is_refused(client, finished):
    path, query = _path_and_query(finished[1]["result"]["video_url"])
    response = client.get(path, params={**query, "expires": int(query["expires"]) + 86400})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_expired_link_is_refused(client, services, user, finished):
    job_id = finished[0]
    stale = services.urls.sign(user.user_id, job_id, "result.mp4", at=0)  # expired in 1970
    response = client.get(stale.path)
    assert response.status_code == 403 and response.json()["error"]["code"] == "link_expired"


def test_link_cannot_be_pointed_at_another_file_or_job(client, app, services, finished, portrait_path,
                                                       espeak_speech):
    job_id, status = finished
    path, query = _path_and_query(status["result"]["video_url"])
    other = new_account(app)
    other_job = _finished_job(client, services, bearer(sign_in(client, other)), other.user_id, portrait_path,
                              espeak_speech)
    for target in (f"/v1/files/{other_job}/result.mp4", f"/v1/files/{job_id}/motion.json"):
        response = client.get(target, params=query)
        assert response.status_code == 404, target  # another tenant's file id reads as not found


@pytest.mark.parametrize("name", ["..%2F..%2Fservice.db", "image.png", "audio.wav", "secret.key", "%2e%2e"])
def test_traversal_or_input_names_are_404(client, finished, name):
    path, query = _path_and_query(finished[1]["result"]["video_url"])
    response = client.get(f"/v1/files/{finished[0]}/{name}?{urlencode(query)}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_unknown_job_link_is_refused(client, finished):
    _, query = _path_and_query(finished[1]["result"]["video_url"])
    response = client.get(f"/v1/files/{'0' * 32}/result.mp4", params=query)
    assert response.status_code == 404


def test_missing_signature_is_422(client, finished):
    response = client.get(f"/v1/files/{finished[0]}/result.mp4")
    assert response.status_code == 422 and set(response.json()["error"]) == {"code", "message"}


def test_purged_result_is_gone(client, services, user, finished):
    from mouthpiece.service.retention import purge_expired

    job_id, status = finished
    with services.sessions() as session:
        assert purge_expired(session, services.storage, retention_days=0, now=10**10) == [job_id]
    assert client.get(status["result"]["video_url"]).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(sign_in(client, user))).json()["result"] is None
