"""Reading Triton's per-model counters in tests without racing the server's bookkeeping.

A backend reports a batch's statistics after it has sent the batch's responses, so a client can
hold every answer a moment before the counters include them (CI once read 8 of 16). Readers here
wait for the expected value or a timeout, so a real shortfall still shows in the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tritonclient.grpc as grpcclient

T = TypeVar("T")
Counts = tuple[int, int]


def read_until(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """Call `read` until `done` accepts its value or `timeout_s` passes; return the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(0.02)


def model_counts(client: grpcclient.InferenceServerClient, model: str) -> Counts:
    """Return (inference_count, execution_count) from Triton's statistics for `model`."""
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def counts_since(
    client: grpcclient.InferenceServerClient, model: str, before: Counts, inferences: int
) -> Counts:
    """The (inferences, executions) added since `before`, read once `inferences` are recorded."""

    def added() -> Counts:
        now = model_counts(client, model)
        return now[0] - before[0], now[1] - before[1]

    return read_until(added, lambda counts: counts[0] >= inferences)
