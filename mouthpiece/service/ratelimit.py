"""Token-bucket rate limits per user and per client IP.

A bucket holds up to `burst` tokens and refills at `rate` tokens per second; each request
takes one, and an empty bucket answers with the seconds until the next token (→ 429 with
`Retry-After`). Embedded mode keeps buckets in the process; with `settings.redis_url` the
buckets live in Redis (one Lua script, atomic, timed by the Redis clock) so every API
process shares the same limits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from mouthpiece.service.config import Settings
from mouthpiece.service.errors import ApiError

log = logging.getLogger(__name__)

# Lua: refill by elapsed time (Redis TIME), take one token if there is one, else report the wait.
# Returns the wait in seconds as a string (Redis truncates Lua numbers to integers).
_REDIS_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size


class RateLimiter(Protocol):
    def hit(self, key: str, limit: Limit) -> float:
        """Take one token from bucket `key`; 0.0 if allowed, else seconds until one is free."""


class MemoryRateLimiter:
    """Buckets in this process (embedded mode: one API process)."""

    MAX_BUCKETS = 100_000  # full buckets are forgotten beyond this many keys

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, monotonic time)

    def hit(self, key: str, limit: Limit) -> float:
        at = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(limit.burst), at))
            tokens = min(limit.burst, tokens + (at - last) * limit.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / limit.rate
            self._buckets[key] = (tokens, at)
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full(at, limit)
            return wait

    def _forget_full(self, at: float, limit: Limit) -> None:
        full_after = limit.burst / limit.rate  # seconds after which any bucket is full again
        self._buckets = {k: v for k, v in self._buckets.items() if at - v[1] < full_after}


class RedisRateLimiter:
    """Buckets in Redis, shared by every API process using the same server."""

    def __init__(self, url: str, prefix: str = "mouthpiece:rl:") -> None:
        import redis

        self._errors = redis.RedisError
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._script = self._client.register_script(_REDIS_BUCKET)
        self._prefix = prefix

    def hit(self, key: str, limit: Limit) -> float:
        try:
            return float(self._script(keys=[self._prefix + key], args=[limit.rate, limit.burst]))
        except self._errors as exc:
            log.error("rate limiter: Redis unreachable (%s)", exc)
            raise ApiError(503, "unavailable", "rate limiter unavailable; try again shortly",
                           {"Retry-After": "5"}) from None


def make_rate_limiter(settings: Settings) -> RateLimiter:
    return RedisRateLimiter(settings.redis_url) if settings.redis_url else MemoryRateLimiter()


def retry_after_header(wait_s: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1), as RFC 9110 requires."""
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}
