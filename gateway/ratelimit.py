"""Per-client sliding-window rate limits, as the seed API documents them (requests per minute)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from gateway.errors import RateLimited

WINDOW_S = 60.0
# Beyond this many tracked clients the oldest idle ones are dropped, bounding memory.
MAX_TRACKED_KEYS = 10_000


class RateLimiter:
    def __init__(
        self,
        limits: dict[str, int],
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._window = window_s
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, group: str, client: str) -> None:
        """Count one request of `client` in `group`, or raise RateLimited with Retry-After."""
        limit = self._limits[group]
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault((group, client), deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) >= limit:
                retry_after = max(1, math.ceil(hits[0] + self._window - now))
                raise RateLimited(
                    f"rate limit exceeded: {limit} requests per minute for this endpoint",
                    retry_after=retry_after,
                )
            hits.append(now)
            if len(self._hits) > MAX_TRACKED_KEYS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self._window]:
            del self._hits[key]
