"""Sliding-window limits per client and endpoint group."""

import pytest

from gateway.errors import RateLimited
from gateway.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_request_over_the_limit_is_refused_with_the_wait_until_a_slot_frees() -> None:
    clock = Clock()
    limiter = RateLimiter({"status": 2}, window_s=60, clock=clock)
    limiter.check("status", "a")
    clock.now += 10
    limiter.check("status", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("status", "a")
    assert refused.value.retry_after == 50
    clock.now += 50
    limiter.check("status", "a")


def test_clients_and_groups_are_counted_separately() -> None:
    limiter = RateLimiter({"status": 1, "other": 1}, clock=Clock())
    limiter.check("status", "a")
    limiter.check("status", "b")
    limiter.check("other", "a")
    with pytest.raises(RateLimited):
        limiter.check("status", "a")
