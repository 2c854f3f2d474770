"""Token-bucket rate limits per user and per client IP.

A bucket holds up to `burst` tokens and refills at `rate` tokens per second; each request
takes one, and an empty bucket answers with the seconds until the next token (→ 429 with
`Retry-After`). Embedded mode keeps buckets in the process, or — with several API processes
(`--api-workers`) — in a memory-mapped file they share; with `settings.redis_url` the
buckets live in Redis (one Lua script, atomic, timed by the Redis clock) so every API
process on every machine shares the same limits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


def take_token(tokens: float, elapsed_s: float, limit: Limit) -> tuple[float, float]:
    """One request against a bucket holding `tokens`, refilled for `elapsed_s`: (tokens left,
    seconds to wait — 0 when a token was taken)."""
    tokens = min(limit.burst, tokens + elapsed_s * limit.rate)
    if tokens >= 1:
        return tokens - 1, 0.0
    return tokens, (1 - tokens) / limit.rate


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
            tokens, wait = take_token(tokens, at - last, limit)
            self._buckets[key] = (tokens, at)
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full(at, limit)
            return wait

    def _forget_full(self, at: float, limit: Limit) -> None:
        full_after = limit.burst / limit.rate  # seconds after which any bucket is full again
        self._buckets = {k: v for k, v in self._buckets.items() if at - v[1] < full_after}


class SharedFileRateLimiter:
    """Buckets in a memory-mapped file, shared by every API process on this machine
    (`mouthpiece serve --api-workers N` in embedded mode, where there is no Redis).

    The file is a fixed table of SLOTS records (key digest, tokens, time); a key lives in one of
    PROBE slots after its hash. An exclusive `flock` (plus a thread lock: flock does not exclude
    threads sharing one open file) makes each take-a-token atomic across processes. Times are
    CLOCK_MONOTONIC, which all processes of one machine share. A bucket idle for STALE_S is full
    again, so its slot may be reused; if all PROBE slots hold live buckets, the least recently
    used is replaced (that key starts again with a full bucket).
    """

    SLOTS = 1 << 16
    PROBE = 8
    STALE_S = 60.0
    _RECORD = struct.Struct("<16sdd")  # blake2b-128 of the key, tokens, monotonic seconds
    _EMPTY = bytes(16)

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = self.SLOTS * self._RECORD.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size != size:
            with self._locked():
                if os.fstat(self._fd).st_size != size:
                    os.ftruncate(self._fd, 0)
                    os.ftruncate(self._fd, size)  # zero-filled: every slot empty
        self._map = mmap.mmap(self._fd, size)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def hit(self, key: str, limit: Limit) -> float:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        first = int.from_bytes(digest[:8], "little") % self.SLOTS
        record, size = self._RECORD, self._RECORD.size
        with self._thread_lock, self._locked():
            at = time.monotonic()
            slot, tokens, last = None, float(limit.burst), at
            free = oldest = None
            oldest_at = math.inf
            for i in range(self.PROBE):
                index = (first + i) % self.SLOTS
                owner, held, when = record.unpack_from(self._map, index * size)
                if owner == digest:
                    slot, tokens, last = index, held, min(when, at)
                    break
                # empty, idle long enough to be full again, or stamped by a clock from before a reboot
                if free is None and (owner == self._EMPTY or at - when >= self.STALE_S or when > at + 1.0):
                    free = index
                if when < oldest_at:
                    oldest, oldest_at = index, when
            if slot is None:
                slot = free if free is not None else oldest
            tokens, wait = take_token(tokens, at - last, limit)
            record.pack_into(self._map, slot * size, digest, tokens, at)
            return wait

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


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
    """Redis when configured; else, with several API processes, a file they share; else memory."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    if settings.api_workers > 1:
        return SharedFileRateLimiter(settings.data_dir / "ratelimit.bin")
    return MemoryRateLimiter()


def retry_after_header(wait_s: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1), as RFC 9110 requires."""
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}
