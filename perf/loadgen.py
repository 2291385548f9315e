"""Closed-loop load: N client threads each send one request, wait for it, send the next.

Every path of the benchmark (in-process ONNX Runtime, Triton over gRPC, the REST gateway,
PyTorch) is driven by this same loop, so their numbers differ only by what a request does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

# Performs request number `index` (used to pick the input), blocking until its answer is in.
Request = Callable[[int], object]
# Builds one thread's request function (its own client or session handle); called in-thread.
RequestFactory = Callable[[], Request]


class MeasurementError(RuntimeError):
    """A request failed during a measurement: the run's numbers would be meaningless."""


@dataclass
class RunResult:
    """One closed-loop run: per-request latencies and the wall time they spanned."""

    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        """Completed requests per second over the run's wall time."""
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class _Shared:
    total: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_index: int = 0
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def claim(self) -> int | None:
        with self.lock:
            if self.next_index >= self.total or self.errors:
                return None
            index = self.next_index
            self.next_index += 1
            return index


def run_closed_loop(
    factory: RequestFactory,
    concurrency: int,
    total: int,
    *,
    progress: tqdm[None] | None = None,
) -> RunResult:
    """Send `total` requests from `concurrency` threads; raise MeasurementError on a failure.

    Each thread builds its request function first; timing starts once all are built.
    """
    if concurrency < 1 or total < concurrency:
        raise ValueError(f"need 1 ≤ concurrency ≤ total, got {concurrency} and {total}")
    shared = _Shared(total=total)
    ready = threading.Barrier(concurrency)
    threads = [
        threading.Thread(
            target=_client, args=(factory, shared, ready, progress), name=f"client-{n}"
        )
        for n in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if shared.errors:
        error = shared.errors[0]
        raise MeasurementError(f"a request failed: {type(error).__name__}: {error}") from error
    wall = max(shared.ends) - min(shared.starts)
    return RunResult(concurrency=concurrency, latencies_s=shared.latencies, wall_s=wall)


def _client(
    factory: RequestFactory,
    shared: _Shared,
    ready: threading.Barrier,
    progress: tqdm[None] | None,
) -> None:
    try:
        request = factory()
    except BaseException as error:
        with shared.lock:
            shared.errors.append(error)
        ready.abort()
        return
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        return
    while (index := shared.claim()) is not None:
        start = time.perf_counter()
        try:
            request(index)
        except BaseException as error:
            with shared.lock:
                shared.errors.append(error)
            return
        end = time.perf_counter()
        with shared.lock:
            shared.starts.append(start)
            shared.ends.append(end)
            shared.latencies.append(end - start)
        if progress is not None:
            progress.update()
