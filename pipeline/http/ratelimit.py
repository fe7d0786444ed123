"""Per-key request rate limits on writes and search: a token bucket per (key, kind), in this process.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes one, or is
answered ``429`` with ``Retry-After`` (whole seconds until a token is back). Keyed by the API key's id
(the token counts as one key; anonymous public callers by client address), so one misbehaving CMS
drains only its own bucket.

Where the buckets live follows the broker: with a Redis broker (``CHRONICLE_BROKER_URL=redis://…``)
every API process shares them in Redis (one Lua script per request: refill, take, answer, atomically,
on Redis's clock), so N processes still allow a key its rate once; otherwise they are in this process
(one API process is the embedded deployment). A Redis that does not answer never fails a request: the
process falls back to its own buckets until it answers again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .problems import ApiError

log = logging.getLogger("chronicle.http")

MAX_BUCKETS = 10_000  # least recently used buckets are forgotten beyond this (they were full anyway)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 when ``who`` may go ahead (a token is taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.pop(who, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[who] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def close(self) -> None:
        return None

    def check(self, who: str, what: str) -> None:
        """Raise the 429 when ``who`` is out of tokens."""
        wait = self.take(who)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"too many {what} requests for this key: retry in {seconds} s",
                           headers={"Retry-After": str(seconds)}, retry_after=seconds)


_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisTokenBuckets(TokenBuckets):
    """The same buckets in Redis, shared by every API process (``kind`` names them apart)."""

    def __init__(self, url: str, kind: str, rate: float, burst: int) -> None:
        super().__init__(rate, burst)
        import redis

        self.kind = kind
        self.client: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_TAKE)

    def close(self) -> None:
        self.client.close()

    def take(self, who: str) -> float:
        if self.rate <= 0:
            return 0.0
        import redis

        try:
            return float(self.script(keys=[f"chronicle:ratelimit:{self.kind}:{who}"], args=[self.rate, self.burst]))
        except redis.RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); this process's own buckets meanwhile", exc)
            return super().take(who)


def buckets_for(broker_url: str, kind: str, rate: float, burst: int) -> TokenBuckets:
    """Redis-backed buckets when the broker is Redis, in-process ones otherwise."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisTokenBuckets(broker_url, kind, rate, burst)
    return TokenBuckets(rate, burst)
