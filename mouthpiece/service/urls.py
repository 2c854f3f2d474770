"""Expiring HMAC-signed download URLs for tenant files (local storage; S3 uses presigned URLs).

The signature binds the owner, the job, the file name and the expiry time, so a link cannot
be stretched in time, pointed at another file, or forged without the service secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from mouthpiece.service.errors import ApiError

DOWNLOAD_PATH = "/v1/files/{job_id}/{name}"


def invalid_link() -> ApiError:
    return ApiError(404, "not_found", "no such file, or this download link is not valid; "
                    "get a fresh link from GET /v1/jobs/{id}")


@dataclass(frozen=True)
class SignedUrl:
    path: str  # path and query, relative to the service's base URL
    expires_at: int  # UTC epoch seconds


@dataclass(frozen=True)
class UrlSigner:
    key: bytes
    ttl_s: int

    def _signature(self, user_id: str, job_id: str, name: str, expires: int) -> str:
        message = f"{user_id}\n{job_id}\n{name}\n{expires}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, user_id: str, job_id: str, name: str, *, at: float | None = None) -> SignedUrl:
        expires = int(time.time() if at is None else at) + self.ttl_s
        query = urlencode({"expires": expires, "sig": self._signature(user_id, job_id, name, expires)})
        return SignedUrl(f"{DOWNLOAD_PATH.format(job_id=job_id, name=name)}?{query}", expires)

    def verify(self, user_id: str, job_id: str, name: str, expires: int, signature: str,
               *, at: float | None = None) -> None:
        """Raise unless the signature matches (404: a forged link reveals nothing, not even that
        the job exists) and the link has not expired (403)."""
        expected = self._signature(user_id, job_id, name, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise invalid_link()
        if expires <= (time.time() if at is None else at):
            raise ApiError(403, "link_expired", "this download link has expired; "
                           "get a fresh one from GET /v1/jobs/{id}")
