"""Storage: the same contract on a local folder and on a real S3 server (SeaweedFS `weed mini`).

Keys only come from `job_key`; anything else — traversal, absolute paths, other names — is
refused before it reaches the disk or the bucket; tenants never see each other's files.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mouthpiece.service.config import Settings
from mouthpiece.service.db import new_id
from mouthpiece.service.storage import LocalStorage, S3Storage, job_key, job_prefix, make_storage, tenant_prefix

ALICE, BOB = new_id(), new_id()


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return make_storage(Settings(data_dir=tmp_path))
    return make_storage(Settings(data_dir=tmp_path, **request.getfixturevalue("s3_bucket")))


def test_make_storage_picks_the_backend(tmp_path, s3_bucket):
    assert isinstance(make_storage(Settings(data_dir=tmp_path)), LocalStorage)
    assert isinstance(make_storage(Settings(data_dir=tmp_path, **s3_bucket)), S3Storage)


def test_round_trip(storage, tmp_path):
    job = new_id()
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x00video" * 100_000)  # 600 kB: several stream chunks
    key = job_key(ALICE, job, "result.mp4")
    assert not storage.exists(key)
    storage.put_file(key, source)
    storage.put_bytes(job_key(ALICE, job, "motion.json"), b"{}")
    assert storage.exists(key) and storage.size(key) == source.stat().st_size
    storage.fetch(key, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert b"".join(storage.open_stream(key)) == source.read_bytes()
    assert storage.list(job_prefix(ALICE, job)) == sorted([key, job_key(ALICE, job, "motion.json")])
    storage.put_bytes(key, b"replaced")  # overwrite is whole-object
    assert b"".join(storage.open_stream(key)) == b"replaced"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting a missing key is fine


def test_an_upload_is_stored_from_its_spooled_file_as_sent(storage):
    import tempfile

    spooled = tempfile.SpooledTemporaryFile(max_size=1024)  # rolls over to disk, as big uploads do
    payload = b"RIFF" + bytes(range(256)) * 40
    spooled.write(payload)  # left at its end, as a parsed upload is
    key = job_key(ALICE, new_id(), "audio.upload")
    storage.put_stream(key, spooled)
    assert b"".join(storage.open_stream(key)) == payload


def test_missing_keys_raise_file_not_found(storage, tmp_path):
    key = job_key(ALICE, new_id(), "audio.wav")
    with pytest.raises(FileNotFoundError):
        storage.fetch(key, tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        storage.size(key)
    with pytest.raises(FileNotFoundError):
        storage.open_stream(key)
    assert not (tmp_path / "x").exists()


def test_tenants_are_isolated(storage):
    a_job, b_job = new_id(), new_id()
    storage.put_bytes(job_key(ALICE, a_job, "image.png"), b"alice")
    storage.put_bytes(job_key(BOB, b_job, "image.png"), b"bob")
    assert storage.list(tenant_prefix(ALICE)) == [job_key(ALICE, a_job, "image.png")]
    assert storage.list(job_prefix(ALICE, b_job)) == []  # Bob's job id under Alice's prefix: nothing
    assert storage.delete_prefix(job_prefix(ALICE, a_job)) == 1
    assert storage.list(tenant_prefix(ALICE)) == []
    assert storage.list(tenant_prefix(BOB)) == [job_key(BOB, b_job, "image.png")]


BAD_NAMES = ["../image.png", "image.png/..", "..", ".", "", "result.mp4 ", "RESULT.MP4", "result.mp4\x00.png",
             "x/../../result.mp4", "/etc/passwd", "result.exe", "..\\result.mp4", "%2e%2e%2fresult.mp4"]
BAD_IDS = ["..", "../" + "a" * 32, "A" * 32, "a" * 7, "a" * 65, "abc/def0", "", "g" * 32, " " + "a" * 31]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_job_key_refuses_names_outside_the_fixed_set(name):
    with pytest.raises(ValueError):
        job_key(ALICE, new_id(), name)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_job_key_refuses_ids_that_are_not_hex(bad):
    with pytest.raises(ValueError):
        job_key(bad, new_id(), "image.png")
    with pytest.raises(ValueError):
        job_key(ALICE, bad, "image.png")
    with pytest.raises(ValueError):
        job_prefix(bad, new_id())


RAW_KEYS = ["../../etc/passwd", "/etc/passwd", f"tenants/{ALICE}/jobs/../../../secret.key",
            f"tenants/{ALICE}/jobs/{'a' * 32}/../../{BOB}/jobs/{'b' * 32}/image.png",
            f"tenants/{ALICE}/jobs/{'a' * 32}/notes.txt", f"tenants/{ALICE}/image.png", "secret.key",
            f"tenants/{ALICE}/jobs/{'a' * 32}//image.png", f"./tenants/{ALICE}/jobs/{'a' * 32}/image.png"]


@pytest.mark.parametrize("key", RAW_KEYS)
def test_every_method_refuses_keys_not_made_by_job_key(key, tmp_path):
    store = LocalStorage(tmp_path / "storage")
    (tmp_path / "secret.key").write_text("do not read")
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.put_file(key, tmp_path / "secret.key"),
                 lambda: store.fetch(key, tmp_path / "out"), lambda: store.open_stream(key),
                 lambda: store.size(key), lambda: store.exists(key), lambda: store.delete(key),
                 lambda: store.presigned_url(key, 60)):
        with pytest.raises(ValueError):
            call()
    for prefix in ("../", "/", f"tenants/{ALICE}/../", "tenants/../../"):
        with pytest.raises(ValueError):
            store.list(prefix)
        with pytest.raises(ValueError):
            store.delete_prefix(prefix)
    assert (tmp_path / "secret.key").read_text() == "do not read"
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "storage").exists() or not any((tmp_path / "storage").rglob("*"))


def test_local_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    store = LocalStorage(tmp_path)
    key = job_key(ALICE, new_id(), "audio.wav")
    missing = tmp_path / "missing.wav"
    with pytest.raises(FileNotFoundError):
        store.put_file(key, missing)
    store.put_bytes(key, b"one")
    folder = (tmp_path / key).parent
    assert [p.name for p in folder.iterdir()] == ["audio.wav"]


def test_s3_presigned_url_downloads_and_expires(s3_bucket, tmp_path):
    store = make_storage(Settings(data_dir=tmp_path, **s3_bucket))
    key = job_key(ALICE, new_id(), "result.mp4")
    store.put_bytes(key, b"mp4 bytes")
    with urllib.request.urlopen(store.presigned_url(key, 60), timeout=10) as response:
        assert response.read() == b"mp4 bytes"
    with pytest.raises(urllib.error.HTTPError) as refused:  # no signature: the bucket is private
        urllib.request.urlopen(f"{s3_bucket['s3_endpoint']}/{s3_bucket['s3_bucket']}/{key}", timeout=10)
    assert refused.value.code == 403
    short = store.presigned_url(key, 1)
    time.sleep(2.2)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(short, timeout=10)
    assert expired.value.code == 403


def test_local_storage_has_no_presigned_urls(tmp_path):
    assert LocalStorage(tmp_path).presigned_url(job_key(ALICE, new_id(), "result.mp4"), 60) is None


def test_ping_reports_an_unreachable_bucket(s3_server, tmp_path):
    store = S3Storage(s3_server.endpoint, "no-such-bucket-here", access_key=s3_server.access_key,
                      secret_key=s3_server.secret_key)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        store.ping()
    store.ensure_bucket()
    store.ping()
    LocalStorage(Path(tmp_path) / "fresh").ping()
