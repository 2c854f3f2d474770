"""Scaled mode end to end: PostgreSQL + Redis + SeaweedFS S3 + two `mouthpiece worker` processes.

Real servers on loopback (tests/service/servers.py); jobs are inserted as the API would, the
workers take them from Redis, results land in the S3 bucket and download via presigned URLs.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest

from tests.service.support import (Service, audit_records, create_user, make_settings, start_worker, stop_worker,
                                   submit_job_row, wait_until)

WAIT_S = 300


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "short.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "Hello there, my friend."], check=True)
    return path


def log_entries(path: Path) -> list[dict]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


@pytest.mark.slow
def test_two_workers_on_postgres_redis_and_s3(tmp_path, postgres_url, redis_url, s3_bucket, portrait_path,
                                              speech):
    settings = make_settings(tmp_path / "data", database_url=postgres_url, redis_url=redis_url, **s3_bucket)
    service = Service(settings)
    user = create_user(service, plan="premium")
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [start_worker(settings, log) for log in logs]
    try:
        wait_until(lambda: all(any("serving" in e.get("msg", "") for e in log_entries(log)) for log in logs),
                   WAIT_S, "both workers to serve")
        job_ids = [submit_job_row(service, user, image=portrait_path, audio=speech, charged_s=1.8)
                   for _ in range(2)]
        wait_until(lambda: all(service.job(j).status not in ("queued", "running") for j in job_ids),
                   WAIT_S, "both jobs to finish")
    finally:
        codes = [stop_worker(worker) for worker in workers]
    assert codes == [0, 0]
    claimed_by = {e["job_id"]: i for i, log in enumerate(logs) for e in log_entries(log)
                  if "claimed" in e.get("msg", "")}
    assert sorted(claimed_by.values()) == [0, 1]  # one job each: the queue is shared

    for job_id in job_ids:
        job = service.job(job_id)
        assert (job.status, job.attempts) == ("succeeded", 1), (job.error_code, job.error_message)
        url = service.storage.presigned_url(job.result["video_key"], 120)
        assert url.startswith(s3_bucket["s3_endpoint"]) and "X-Amz-Signature" in url
        video = tmp_path / f"{job_id}.mp4"
        with urllib.request.urlopen(url, timeout=30) as response:
            video.write_bytes(response.read())
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == job.result["frames"]
        with pytest.raises(urllib.error.HTTPError):  # the object is private without the signature
            urllib.request.urlopen(url.split("?")[0], timeout=30)
    assert not (Path(settings.data_dir) / "storage").exists()  # nothing went to local storage
    assert service.used_s(user.id) == pytest.approx(3.6)  # in PostgreSQL, charged once per job
    assert [r["outcome"] for r in audit_records(settings, user.id)] == ["succeeded", "succeeded"]
    service.close()
