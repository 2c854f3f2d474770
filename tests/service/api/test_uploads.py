"""Hostile uploads (OWASP API4/8): oversized bodies are cut off before they are read into memory,
and decompression bombs, wrong-type and damaged files are refused with 4xx — leaving nothing in
storage, the jobs table or the quota."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mouthpiece.service.app import create_app
from mouthpiece.service.db import Job, QuotaUsage

from .conftest import LiveServer, bearer, job_files, make_settings, new_account, sign_in

CAP = 2 * 1024 * 1024  # a small body cap for these tests


@pytest.fixture
def capped(tmp_path):
    app = create_app(make_settings(tmp_path / "data", max_upload_bytes=CAP))
    return app


def _nothing_stored(app) -> None:
    services = app.state.services
    root = services.settings.data_dir / "storage"
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert files == []
    with services.sessions() as session:
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 0
        assert session.execute(select(func.coalesce(func.sum(QuotaUsage.seconds), 0.0))).scalar_one() == 0


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width×height zero pixels: tiny on disk, huge when decoded."""
    row = b"\0" + b"\0" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_declared_oversize_body_is_refused_before_reading(capped, portrait_path, espeak_speech):
    with TestClient(capped) as client:
        headers = bearer(sign_in(client, new_account(capped)))
        big = b"\0" * (CAP + 1)
        response = client.post("/v1/jobs", headers=headers,
                               files=job_files(portrait_path, espeak_speech, voice=("v.wav", big, "audio/wav")))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    _nothing_stored(capped)


def test_streamed_oversize_body_without_length_is_cut_off(capped, portrait_path):
    """A chunked upload (no Content-Length) over the cap is stopped while it streams, on a real server."""
    with LiveServer(capped) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        account = new_account(capped)
        token = http.post("/v1/auth/token", headers={"Authorization": f"Bearer {account.api_key}"}).json()
        boundary = "mouthpiece-test-boundary"

        def body():
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                   "Content-Type: image/png\r\n\r\n").encode()
            chunk = b"\0" * 65536
            for _ in range(CAP // 65536 * 4):  # 4× the cap, if the server kept reading
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        try:
            response = http.post("/v1/jobs", content=body(), headers={
                **bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})
        except httpx.RemoteProtocolError:  # the server may close the connection while we still send
            response = None
        if response is not None:
            assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    _nothing_stored(capped)


def test_small_endpoints_have_a_small_body_cap(client):
    response = client.post("/v1/auth/refresh", content=b"{" + b" " * 70_000 + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("width, height", [(30_000, 30_000),  # 900 Mpx: Pillow's own bomb guard
                                           (8_000, 6_000)])  # 48 Mpx: over the media layer's 40 Mpx
def test_decompression_bomb_png_is_refused(client, app, user_headers, espeak_speech, width, height):
    bomb = _png_bomb(width, height)
    assert len(bomb) < 200_000  # ~100 kB on the wire, gigabytes once decoded
    response = client.post("/v1/jobs", headers=user_headers, files={
        "image": ("bomb.png", bomb, "image/png"), "audio": ("a.wav", espeak_speech.read_bytes(), "audio/wav")})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "too large" in message or "Mpx" in message
    _nothing_stored(app)


@pytest.mark.parametrize("image, audio, needle", [
    (b"#!/bin/sh\necho pwned\n", None, "image"),  # a script as the portrait
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None, "image"),
    (None, b"GIF89a" + b"\0" * 100, "audio"),  # an image as the speech
    (None, b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio"),  # a truncated WAV
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, None, "image"),  # a damaged PNG
])
def test_wrong_type_or_damaged_uploads_are_refused(client, app, user_headers, portrait_path, espeak_speech,
                                                   image, audio, needle):
    response = client.post("/v1/jobs", headers=user_headers, files={
        "image": ("i.png", image if image is not None else portrait_path.read_bytes(), "image/png"),
        "audio": ("a.wav", audio if audio is not None else espeak_speech.read_bytes(), "audio/wav")})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert needle in response.json()["error"]["message"]
    _nothing_stored(app)


def test_a_zip_bomb_as_audio_is_refused(client, app, user_headers, portrait_path):
    payload = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(payload, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("speech.wav", b"\0" * 50_000_000)
    response = client.post("/v1/jobs", headers=user_headers, files={
        "image": ("i.jpg", portrait_path.read_bytes(), "image/jpeg"),
        "audio": ("a.zip", payload.getvalue(), "application/zip")})
    assert response.status_code == 422
    _nothing_stored(app)


@pytest.mark.parametrize("body", [
    b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n[bad header]\r\n\r\nx\r\n--b--\r\n",
    b"--b\r\nno headers at all",
    b"garbage without a boundary",
])
def test_malformed_multipart_is_400(client, user_headers, body):
    response = client.post("/v1/jobs", content=body, headers={
        **user_headers, "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code in (400, 422), response.text
    assert set(response.json()["error"]) == {"code", "message"}
