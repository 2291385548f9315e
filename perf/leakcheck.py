"""Does the gateway keep memory per request? Its RSS before and after many small requests that
go through the request path (routing, middleware, multipart parsing, upload sniffing, the job
store, Triton readiness) without costing model time.

The mix, cycled: GET /health (asks Triton whether the upscaler is ready), GET /status of a
known completed job (the SQLite job store), POST /upscale of bytes that are no image (multipart
parsing and sniffing up to the 415 answer) and GET /metrics (job totals). A warm-up of the same
mix first, so one-time allocations (lazy imports, caches, connection pools) are in the "before".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from perf.memory import tree_usage
from perf.photos import not_an_image
from perf.realistic_results import LeakCheck

MIX: Final = (
    "GET /health",
    "GET /status/{job}",
    "POST /upscale (not an image: 415)",
    "GET /metrics",
)
EXPECTED: Final = {0: 200, 1: 200, 2: 415, 3: 200}
# Python's allocator keeps freed arenas, SQLite and httpx/uvicorn keep buffers and caches: a
# few MiB move either way without any leak. A leak of 10 kB per request shows as 10 MiB here.
MIN_THRESHOLD_MB: Final = 10.0
RELATIVE_THRESHOLD: Final = 0.05  # of the RSS before
SAMPLES: Final = 10
SETTLE_S: Final = 1.0


def noise_threshold(before_mb: float) -> float:
    return max(MIN_THRESHOLD_MB, RELATIVE_THRESHOLD * before_mb)


@dataclass
class SmallRequests:
    """Sends request number n of the mix."""

    client: Any  # httpx.Client on the gateway
    job_id: str
    junk: bytes = b""

    def __post_init__(self) -> None:
        self.junk = self.junk or not_an_image()

    def send(self, index: int) -> int:
        kind = index % len(MIX)
        if kind == 0:
            response = self.client.get("/health")
        elif kind == 1:
            response = self.client.get(f"/status/{self.job_id}")
        elif kind == 2:
            files = {"file": ("junk.jpg", self.junk, "image/jpeg")}
            response = self.client.post("/upscale", files=files, data={"scale": "4"})
        else:
            response = self.client.get("/metrics")
        return int(response.status_code)


def run_leak_check(
    send: Callable[[int], int],
    pid: int,
    *,
    requests: int,
    warmup: int,
    rss: Callable[[int], float] = lambda pid: tree_usage(pid).rss_mb,
    settle_s: float = SETTLE_S,
) -> LeakCheck:
    """RSS of `pid` (with its children) after the warm-up and after `requests` more, sampled
    along the way; a request answered with an unexpected status is counted as a failure."""
    failures = 0
    for index in range(warmup):
        failures += send(index) != EXPECTED[index % len(MIX)]
    time.sleep(settle_s)
    before = rss(pid)
    samples = [[0.0, round(before, 2)]]
    every = max(1, requests // SAMPLES)
    started = time.monotonic()
    for index in range(requests):
        failures += send(warmup + index) != EXPECTED[(warmup + index) % len(MIX)]
        if (index + 1) % every == 0 and index + 1 < requests:
            samples.append([float(index + 1), round(rss(pid), 2)])
    seconds = time.monotonic() - started
    time.sleep(settle_s)
    after = rss(pid)
    samples.append([float(requests), round(after, 2)])
    return LeakCheck(
        requests=requests,
        mix=list(MIX),
        warmup=warmup,
        before_mb=before,
        after_mb=after,
        threshold_mb=noise_threshold(before),
        samples=samples,
        seconds=seconds,
        failures=failures,
    )
