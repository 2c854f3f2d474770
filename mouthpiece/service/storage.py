"""Object storage for job inputs and results: a local folder (embedded) or S3 (scaled).

Keys are never built from user input: `job_key(user_id, job_id, name)` gives
`tenants/<user_id>/jobs/<job_id>/<name>` with hex ids and a name from a fixed set, and every
storage method checks its key (or prefix) against that shape again, so a path-traversal
string can never reach the file system or the bucket. Each tenant's files live under its own
prefix; downloads go through expiring signed URLs (the API's HMAC route, or S3 presigned URLs).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from mouthpiece.service.config import Settings

# Uploads are stored as they came (`*.upload`, read only by the worker, which decodes and
# re-encodes them before the engine sees them); jobs from before that kept clean .png/.wav inputs.
UPLOAD_NAMES = {"image": "image.upload", "audio": "audio.upload", "voice": "voice.upload"}
JOB_FILE_NAMES = frozenset({"image.png", "audio.wav", "voice.wav", "result.mp4", "motion.json",
                            *UPLOAD_NAMES.values()})
CHUNK_BYTES = 256 * 1024

_HEX_ID = r"[0-9a-f]{8,64}"
_ID = re.compile(rf"^{_HEX_ID}$")
_NAMES = "|".join(re.escape(name) for name in sorted(JOB_FILE_NAMES))
_KEY = re.compile(rf"^tenants/{_HEX_ID}/jobs/{_HEX_ID}/(?:{_NAMES})$")
_PREFIX = re.compile(rf"^tenants/(?:{_HEX_ID}/(?:jobs/(?:{_HEX_ID}/)?)?)?$")


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"{kind} must be 8-64 lowercase hex characters, got {value!r}")
    return value


def job_key(user_id: str, job_id: str, name: str) -> str:
    """The one way to name a stored file: `tenants/<user_id>/jobs/<job_id>/<name>`."""
    _check_id("user id", user_id)
    _check_id("job id", job_id)
    if name not in JOB_FILE_NAMES:
        raise ValueError(f"file name {name!r} is not one of {', '.join(sorted(JOB_FILE_NAMES))}")
    return f"tenants/{user_id}/jobs/{job_id}/{name}"


def job_prefix(user_id: str, job_id: str) -> str:
    """Prefix of all of one job's files (for listing and deletion)."""
    return f"tenants/{_check_id('user id', user_id)}/jobs/{_check_id('job id', job_id)}/"


def tenant_prefix(user_id: str) -> str:
    return f"tenants/{_check_id('user id', user_id)}/"


def check_key(key: str) -> str:
    """`key` if it is a well-formed job file key, else ValueError (nothing else is ever stored)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValueError(f"not a storage prefix: {prefix!r}")
    return prefix


class Storage(Protocol):
    """What the service needs from a storage backend (missing keys raise FileNotFoundError)."""

    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_stream(self, key: str, handle: BinaryIO) -> None: ...
    def fetch(self, key: str, dest: Path) -> None: ...
    def open_stream(self, key: str) -> Iterator[bytes]: ...
    def size(self, key: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str) -> list[str]: ...
    def presigned_url(self, key: str, ttl_s: int) -> str | None: ...
    def ping(self) -> None: ...


def make_storage(settings: Settings) -> Storage:
    """S3 when `settings.s3_endpoint` is set, else a folder under `data_dir/storage`."""
    if settings.s3_endpoint:
        return S3Storage(settings.s3_endpoint, settings.s3_bucket, access_key=settings.s3_access_key,
                         secret_key=settings.s3_secret_key, region=settings.s3_region)
    return LocalStorage(settings.data_dir / "storage")


class LocalStorage:
    """Files under `root`; writes go to a temporary name and are renamed in (atomic)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._root_str = str(self.root)
        self._root_prefix = self._root_str.rstrip(os.sep) + os.sep

    def _path(self, key: str) -> Path:
        # normpath, not resolve(): no file system calls per access. The key pattern already
        # forbids '..', empty and absolute parts; this re-check is defence in depth.
        path = os.path.normpath(os.path.join(self._root_str, check_key(key)))
        if not path.startswith(self._root_prefix):
            raise ValueError(f"key {key!r} escapes the storage root")
        return Path(path)

    def _write_atomically(self, key: str, write) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as source:
            self._write_atomically(key, lambda handle: shutil.copyfileobj(source, handle, CHUNK_BYTES))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, lambda handle: handle.write(data))

    def put_stream(self, key: str, handle: BinaryIO) -> None:
        """Store what `handle` holds from its start (an upload still in its spooled file)."""
        handle.seek(0)
        self._write_atomically(key, lambda out: shutil.copyfileobj(handle, out, CHUNK_BYTES))

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def open_stream(self, key: str) -> Iterator[bytes]:
        handle = open(self._path(key), "rb")  # opened now, so a missing key fails here, not later

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK_BYTES):
                    yield chunk
        return chunks()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        folder = self.root / check_prefix(prefix)
        if prefix != "tenants/" and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # left-over temporary files and empty folders
        return len(keys)

    def list(self, prefix: str) -> list[str]:
        folder = self.root / check_prefix(prefix)
        if not folder.is_dir():
            return []
        keys = (path.relative_to(self.root).as_posix() for path in folder.rglob("*") if path.is_file())
        return sorted(key for key in keys if _KEY.match(key))

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        check_key(key)
        return None  # served by the API's own HMAC-signed download route

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"storage folder {self.root} is not writable")


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, SeaweedFS, MinIO…) through boto3."""

    def __init__(self, endpoint: str, bucket: str, *, access_key: str | None, secret_key: str | None,
                 region: str = "us-east-1") -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60))

    def _missing(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
            "404", "NoSuchKey", "NotFound")

    def _call(self, key: str, operation, **kwargs):
        try:
            return operation(Bucket=self.bucket, Key=key, **kwargs)
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from exc
            raise

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, check_key(key))  # one PUT (or multipart): atomic

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data)

    def put_stream(self, key: str, handle: BinaryIO) -> None:
        handle.seek(0)
        self.client.upload_fileobj(handle, self.bucket, check_key(key))

    def fetch(self, key: str, dest: Path) -> None:
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            body = self._call(check_key(key), self.client.get_object)["Body"]
            with open(tmp, "wb") as handle:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    handle.write(chunk)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def open_stream(self, key: str) -> Iterator[bytes]:
        body = self._call(check_key(key), self.client.get_object)["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()
        return chunks()

    def size(self, key: str) -> int:
        return int(self._call(check_key(key), self.client.head_object)["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def list(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix)):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(key for key in keys if _KEY.match(key))

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)}, ExpiresIn=int(ttl_s))

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (deployment set-up and tests)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
