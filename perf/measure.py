"""One measured point of the user-level benchmark: a closed-loop run (perf.loadgen) of one path
at one concurrency, with the cores it used, Triton's counters around it, and the per-request
figures its request function noted (where a request's time went)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perf.cpu import CpuMeter
from perf.loadgen import RequestFactory, run_closed_loop
from perf.results import Point, StageTimes
from perf.stats import LatencySummary, median
from perf.triton_stats import read_all, stage_times


@dataclass
class Recorder:
    """Figures request functions note per request (thread-safe), summarised as medians."""

    values: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, name: str, value: float) -> None:
        with self.lock:
            self.values.setdefault(name, []).append(float(value))

    def clear(self) -> None:
        with self.lock:
            self.values.clear()

    def medians(self) -> dict[str, float]:
        with self.lock:
            return {name: median(values) for name, values in self.values.items() if values}


# Builds a path's request factory around the recorder its requests note figures in.
FactoryBuilder = Callable[[Recorder], RequestFactory]


@dataclass(frozen=True)
class TritonWatch:
    """Which Triton (a gRPC client to it) and which of its models to read counters of."""

    client: Any  # tritonclient.grpc.InferenceServerClient
    models: tuple[str, ...]


@dataclass
class Measured:
    point: Point
    stages: list[StageTimes]
    notes: dict[str, float]


def measure(
    path: str,
    concurrency: int,
    requests: int,
    build: FactoryBuilder,
    *,
    unit: str,
    watch: TritonWatch | None = None,
    repeats: int = 1,
) -> Measured:
    """`repeats` closed-loop runs of `requests` requests from `concurrency` clients; the
    point's throughput and latency are medians over the repeats, the notes medians over every
    request, Triton's counters summed over the repeats."""
    recorder = Recorder()
    factory = build(recorder)
    throughputs, latencies, own, other = [], [], [], []
    deltas: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        before = read_all(watch.client, watch.models) if watch else {}
        meter = CpuMeter()
        meter.start()
        result = run_closed_loop(factory, concurrency, max(requests, concurrency))
        cpu = meter.stop()
        after = read_all(watch.client, watch.models) if watch else {}
        for model in after:
            delta = after[model] - before[model]
            deltas[model] = deltas[model] + delta if model in deltas else delta
        throughputs.append(result.throughput)
        latencies.append(LatencySummary.of_seconds(result.latencies_s))
        own.append(cpu.own_cores)
        other.append(cpu.other_cores)
    point = Point(
        path=path,
        concurrency=concurrency,
        unit=unit,
        throughputs=throughputs,
        latency=LatencySummary.median_of(latencies),
        requests_per_repeat=max(requests, concurrency),
        own_cores=own,
        other_cores=other,
    )
    stages = [stage_times(model, path, concurrency, delta) for model, delta in deltas.items()]
    return Measured(point, stages, recorder.medians())


def warm_up(build: FactoryBuilder, count: int) -> None:
    """`count` requests, one at a time, whose numbers are thrown away."""
    if count > 0:
        run_closed_loop(build(Recorder()), 1, count)
