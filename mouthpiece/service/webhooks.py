"""Optional signed webhooks: when a job with `webhook_url` finishes, POST its final JSON there.

The body is signed with HMAC-SHA256 under the job owner's webhook secret (derived from the
service secret, so nothing extra is stored) and sent as `X-Mouthpiece-Signature: sha256=<hex>`;
the receiver recomputes it over the raw body. Deliveries retry with exponential backoff on
network errors, 5xx and 429, never follow redirects, and run in a background thread so a slow
receiver never holds a worker.

SSRF: the API vets the URL at submit (`vet`), and each delivery attempt vets it again and then
connects to the very address it vetted — the URL's host is resolved once per attempt, every
address it resolves to must be public (unless `webhook_allow_private`), and the request goes to
that IP with the original `Host` header and TLS server name (the certificate is verified for
the host name). A name re-pointed at an internal address after the check (DNS rebinding) is
never connected to. No proxy from the environment is used (it would resolve the name itself).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

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


Resolver = Callable[[str, int], list[str]]  # (host, port) → IP addresses, preferred first


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (the operating system's resolver), preferred first."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))


class WebhookRefused(ValueError):
    """A webhook URL the service will not call (what to change is in the message)."""


@dataclass(frozen=True)
class Target:
    """A vetted webhook: where to connect (`address`) and what to tell the server (`host`)."""
    scheme: str
    host: str  # as in the URL (the Host header and the TLS server name)
    port: int
    target: str  # path and query
    address: str  # the vetted IP the request goes to

    @property
    def pinned_url(self) -> str:
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{ip}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def vet(url: str, *, allow_private: bool = False, resolve: Resolver = system_resolver) -> Target:
    """Check `url` and resolve its host once: http(s), no credentials, and every address public
    (any address when `allow_private`). → the Target to connect to; WebhookRefused otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise WebhookRefused("webhook_url must be http(s)://host/… without credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = [ipaddress.ip_address(a) for a in resolve(parts.hostname, port)]
    except (OSError, ValueError, UnicodeError):
        raise WebhookRefused(f"webhook_url host {parts.hostname!r} cannot be resolved") from None
    if not addresses:
        raise WebhookRefused(f"webhook_url host {parts.hostname!r} cannot be resolved")
    if not allow_private and not all(a.is_global for a in addresses):
        raise WebhookRefused("webhook_url points at a private, loopback or link-local address; give a public URL")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, target, str(addresses[0]))


def target_allowed(url: str, allow_private: bool = False, resolve: Resolver = system_resolver) -> bool:
    """True if `url` passes `vet` now."""
    try:
        vet(url, allow_private=allow_private, resolve=resolve)
    except WebhookRefused:
        return False
    return True


def deliver(url: str, body: bytes, signature: str, *, allow_private: bool = False,
            resolve: Resolver = system_resolver, attempts: int = ATTEMPTS,
            first_backoff_s: float = FIRST_BACKOFF_S, timeout_s: float = TIMEOUT_S,
            verify: ssl.SSLContext | bool = True) -> bool:
    """POST `body` until a 2xx answer; retry network errors, 5xx and 429. True if delivered.

    Each attempt vets the URL again and connects to the address it vetted (module docstring);
    a redirect is a failed delivery, never a request to somewhere else. `verify`: TLS trust
    (a context with extra roots, for tests and private CAs)."""
    with httpx.Client(follow_redirects=False, trust_env=False, verify=verify, timeout=timeout_s) as client:
        for attempt in range(attempts):
            try:
                target = vet(url, allow_private=allow_private, resolve=resolve)
            except WebhookRefused as exc:
                log.warning("webhook %s refused: %s", url, exc)
                return False
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            try:
                response = client.post(target.pinned_url, content=body, extensions=extensions, headers={
                    "Host": target.host_header, "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature, "User-Agent": "mouthpiece-webhook/1"})
            except httpx.HTTPError as exc:
                retry = True
                log.warning("webhook %s failed: %s (attempt %d)", url, exc, attempt + 1)
            else:
                if 200 <= response.status_code < 300:
                    return True
                retry = response.status_code >= 500 or response.status_code == 429
                log.warning("webhook %s answered %d (attempt %d)", url, response.status_code, attempt + 1)
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
    options.setdefault("allow_private", settings.webhook_allow_private)  # (and `resolve`, `verify`)
    thread = threading.Thread(target=deliver, args=(job.webhook_url, body, signature), kwargs=options,
                              name=f"webhook-{job.id[:8]}", daemon=True)
    thread.start()
    return thread
