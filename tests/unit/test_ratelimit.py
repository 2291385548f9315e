"""Moving-window limits per client and endpoint group (in memory; Redis in the scale-out test)."""

import time

import pytest

from gateway.errors import RateLimited, Unavailable
from gateway.ratelimit import RateLimiter


def test_the_request_over_the_limit_is_refused_until_the_window_moves_on() -> None:
    limiter = RateLimiter({"status": 2}, window_s=1)
    limiter.check("status", "a")
    limiter.check("status", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("status", "a")
    assert refused.value.retry_after == 1
    time.sleep(1.1)
    limiter.check("status", "a")


def test_the_refusal_names_the_per_minute_limit_and_a_wait_within_the_window() -> None:
    limiter = RateLimiter({"upscale": 1})
    limiter.check("upscale", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("upscale", "a")
    assert "1 requests per minute" in refused.value.detail
    assert 58 <= (refused.value.retry_after or 0) <= 60


def test_clients_and_groups_are_counted_separately() -> None:
    limiter = RateLimiter({"status": 1, "other": 1})
    limiter.check("status", "a")
    limiter.check("status", "b")
    limiter.check("other", "a")
    with pytest.raises(RateLimited):
        limiter.check("status", "a")


def test_an_unreachable_shared_counter_refuses_with_503_not_500() -> None:
    limiter = RateLimiter({"status": 5}, storage_uri="redis://127.0.0.1:1/0")

    with pytest.raises(Unavailable):
        limiter.check("status", "a")
    assert limiter.check_storage() is False
