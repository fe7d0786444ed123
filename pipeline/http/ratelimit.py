"""Per-key request rate limits on writes and search: a token bucket per (key, kind), in this process.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes one, or is
answered ``429`` with ``Retry-After`` (whole seconds until a token is back). Keyed by the API key's id
(the token counts as one key; anonymous public callers by client address), so one misbehaving CMS
drains only its own bucket.

In-process on purpose: one API process is the documented deployment, and a bucket is a few floats
under a lock, with no round trip on the request path. Behind N processes each has its own buckets,
so a key may reach N × the rate (docs/http.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .problems import ApiError

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

    def check(self, who: str, what: str) -> None:
        """Raise the 429 when ``who`` is out of tokens."""
        wait = self.take(who)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"too many {what} requests for this key: retry in {seconds} s",
                           headers={"Retry-After": str(seconds)}, retry_after=seconds)
