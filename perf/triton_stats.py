"""Triton's per-model statistics (cumulative counters), read before and after a run and
subtracted: where a request's time went inside the server."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import tritonclient.grpc as grpcclient

from perf.results import StageTimes

NS_PER_MS = 1e6


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one model (all versions summed)."""

    requests: int = 0
    inferences: int = 0
    executions: int = 0
    success_ns: int = 0
    queue_ns: int = 0
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0
    batch_compute_ns: int = 0  # per execution, summed over batch sizes

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            *(getattr(self, name) - getattr(other, name) for name in self.__dataclass_fields__)
        )

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )


def read_counters(client: grpcclient.InferenceServerClient, model: str) -> Counters:
    """Read one model's cumulative statistics over gRPC."""
    response = client.get_inference_statistics(model_name=model)
    total = Counters()
    for stats in response.model_stats:
        infer = stats.inference_stats
        batch_ns = sum(
            b.compute_input.ns + b.compute_infer.ns + b.compute_output.ns for b in stats.batch_stats
        )
        total = total + Counters(
            requests=int(infer.success.count),
            inferences=int(stats.inference_count),
            executions=int(stats.execution_count),
            success_ns=int(infer.success.ns),
            queue_ns=int(infer.queue.ns),
            compute_input_ns=int(infer.compute_input.ns),
            compute_infer_ns=int(infer.compute_infer.ns),
            compute_output_ns=int(infer.compute_output.ns),
            batch_compute_ns=int(batch_ns),
        )
    return total


def read_all(
    client: grpcclient.InferenceServerClient, models: Iterable[str]
) -> dict[str, Counters]:
    return {model: read_counters(client, model) for model in models}


def stage_times(model: str, path: str, concurrency: int, delta: Counters) -> StageTimes:
    """Per-request averages of a counter delta. Triton charges every request of a batch the
    whole batch's compute time; the per-inference figure divides the batches' time by tiles."""
    requests = max(delta.requests, 1)

    def per_request(ns: int) -> float:
        return ns / requests / NS_PER_MS

    return StageTimes(
        model=model,
        path=path,
        concurrency=concurrency,
        requests=delta.requests,
        inferences=delta.inferences,
        executions=delta.executions,
        request_ms=per_request(delta.success_ns),
        queue_ms=per_request(delta.queue_ns),
        compute_input_ms=per_request(delta.compute_input_ns),
        compute_infer_ms=per_request(delta.compute_infer_ns),
        compute_output_ms=per_request(delta.compute_output_ns),
        compute_per_inference_ms=delta.batch_compute_ns / max(delta.inferences, 1) / NS_PER_MS,
    )
