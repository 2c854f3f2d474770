"""Optional signed webhooks: when a job with `webhook_url` finishes, POST its final JSON there.

The body is signed with HMAC-SHA256 under the job owner's webhook secret (derived from the
service secret, so nothing extra is stored) and sent as `X-Mouthpiece-Signature: sha256=<hex>`;
the receiver recomputes it over the raw body. Deliveries retry with exponential backoff on
network errors, 5xx and 429, never follow redirects, re-check just before each attempt that the
host resolves only to public addresses (unless `webhook_allow_private`), and run in a background
thread so a slow receiver never holds a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from mouthpiece.service.config import Settings
from mouthpiece.service.db import Job

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Mouthpiece-Signature"
ATTEMPTS = 5
FIRST_BACKOFF_S = 0.5
TIMEOUT_S = 10.0


def webhook_secret(settings: Settings, user_id: str) -> str:
    """The secret a user verifies their webhooks with (stable; the API may show it to them)."""
    return hmac.new(settings.secret(), b"webhook:" + user_id.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header or "")


def job_payload(job: Job) -> dict:
    """The final job as the API shows it, minus storage keys (the client fetches files through the API)."""
    result = {k: v for k, v in (job.result or {}).items() if not k.endswith("_key")}
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {"id": job.id, "status": job.status, "progress": job.progress, "error": error,
            "result": result or None, "attempts": job.attempts, "created_at": job.created_at,
            "finished_at": job.finished_at}


def target_allowed(url: str, allow_private: bool = False) -> bool:
    """True if `url` is http(s) without credentials and its host resolves only to public
    addresses (any address when `allow_private`): a webhook must not reach into our network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except (OSError, ValueError, UnicodeError):
        return False
    return allow_private or all(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is a failed delivery, never a request to somewhere else


def deliver(url: str, body: bytes, signature: str, *, allow_private: bool = False, attempts: int = ATTEMPTS,
            first_backoff_s: float = FIRST_BACKOFF_S, timeout_s: float = TIMEOUT_S) -> bool:
    """POST `body` until a 2xx answer; retry network errors, 5xx and 429. True if delivered."""
    opener = urllib.request.build_opener(_NoRedirect)
    for attempt in range(attempts):
        if not target_allowed(url, allow_private):
            log.warning("webhook %s refused: not a public http(s) address", url)
            return False
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: signature,
            "User-Agent": "mouthpiece-webhook/1"})
        try:
            with opener.open(request, timeout=timeout_s) as response:
                if 200 <= response.status < 300:
                    return True
                retry = False
        except urllib.error.HTTPError as exc:
            retry = exc.code >= 500 or exc.code == 429
            log.warning("webhook %s answered %d (attempt %d)", url, exc.code, attempt + 1)
        except (urllib.error.URLError, OSError) as exc:
            retry = True
            log.warning("webhook %s failed: %s (attempt %d)", url, exc, attempt + 1)
        if not retry or attempt == attempts - 1:
            break
        time.sleep(first_backoff_s * 2 ** attempt)
    return False


def notify(settings: Settings, job: Job, **options) -> threading.Thread | None:
    """Send `job`'s final JSON to its webhook in a background thread (None if it has none)."""
    if not job.webhook_url:
        return None
    body = json.dumps(job_payload(job), separators=(",", ":"), sort_keys=True).encode()
    signature = sign(webhook_secret(settings, job.user_id), body)
    options.setdefault("allow_private", settings.webhook_allow_private)
    thread = threading.Thread(target=deliver, args=(job.webhook_url, body, signature), kwargs=options,
                              name=f"webhook-{job.id[:8]}", daemon=True)
    thread.start()
    return thread
