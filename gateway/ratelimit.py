"""Per-client moving-window rate limits, as the seed API documents them (requests per minute).

The counting is the `limits` library's: in this process's memory by default, or on Redis
(`FACET_REDIS_URL`) so that several gateways share one count per client; a client spreading
its requests over gateways gets no more than the documented limit in all."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gateway.errors import RateLimited, Unavailable

log = logging.getLogger(__name__)
WINDOW_S = 60
NAMESPACE = "facet"


class RateLimiter:
    def __init__(
        self, limits: dict[str, int], *, window_s: int = WINDOW_S, storage_uri: str = "memory://"
    ) -> None:
        self._items: dict[str, RateLimitItem] = {
            group: RateLimitItemPerSecond(amount, window_s, namespace=NAMESPACE)
            for group, amount in limits.items()
        }
        try:
            storage = storage_from_string(storage_uri)
        except Exception:  # its message would quote the URL, password and all
            scheme = storage_uri.split(":", 1)[0]
            raise ValueError(
                f"FACET_REDIS_URL: the rate-limit counters cannot use a {scheme!r} URL "
                "(redis:// or rediss://)"
            ) from None
        assert isinstance(storage, Storage), "a synchronous storage URI (no async+ scheme)"
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)
        self.backend = storage_uri.split(":", 1)[0]

    def check(self, group: str, client: str) -> None:
        """Count one request of `client` in `group`, or raise RateLimited with Retry-After.
        An unreachable shared counter refuses (503) rather than lets everything through."""
        item = self._items[group]
        try:
            if self._strategy.hit(item, group, client):
                return
            reset_at = self._strategy.get_window_stats(item, group, client).reset_time
        except Exception as error:  # the storage's own errors (redis-py's) vary by backend
            log.warning("rate-limit storage failed: %s", type(error).__name__)
            raise Unavailable("the rate-limit store is unreachable; try again shortly") from None
        retry_after = max(1, math.ceil(reset_at - time.time()))
        minute_rate = item.amount * WINDOW_S / item.get_expiry()
        raise RateLimited(
            f"rate limit exceeded: {minute_rate:g} requests per minute for this endpoint",
            retry_after=retry_after,
        )

    def check_storage(self) -> bool:
        """Whether the counters' storage answers (for /health)."""
        try:
            return bool(self._storage.check())
        except Exception:
            return False
