"""Triton's statistics around one run of the face-swap video benchmark: perf.triton_stats'
counters per model, plus each model's executions and compute by batch size (how batched the
swapper's calls were, and what a batch of N cost against N batches of one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from perf.swap_video_results import ModelDelta
from perf.triton_stats import Counters, read_counters

NS: Final = 1e9
Batches = dict[int, tuple[int, int]]  # batch size → (executions, compute ns)


def read_batches(client: Any, model: str) -> Batches:
    """Executions and their compute (input + infer + output) by batch size, all versions."""
    response = client.get_inference_statistics(model_name=model)
    found: dict[int, tuple[int, int]] = {}
    for stats in response.model_stats:
        for batch in stats.batch_stats:
            ns = batch.compute_input.ns + batch.compute_infer.ns + batch.compute_output.ns
            count, total = found.get(int(batch.batch_size), (0, 0))
            found[int(batch.batch_size)] = (count + int(batch.compute_infer.count), total + ns)
    return found


@dataclass(frozen=True)
class Snapshot:
    counters: dict[str, Counters]
    batches: dict[str, Batches]


def snapshot(client: Any, models: Sequence[str]) -> Snapshot:
    return Snapshot(
        {model: read_counters(client, model) for model in models},
        {model: read_batches(client, model) for model in models},
    )


def deltas(before: Snapshot, after: Snapshot) -> list[ModelDelta]:
    """Per model, what happened between two snapshots (models with no request left out)."""
    found = []
    for model, now in after.counters.items():
        delta = now - before.counters.get(model, Counters())
        if delta.requests == 0 and delta.executions == 0:
            continue
        earlier = before.batches.get(model, {})
        by_batch: dict[int, list[float]] = {}
        for size, (count, ns) in sorted(after.batches.get(model, {}).items()):
            was_count, was_ns = earlier.get(size, (0, 0))
            if count > was_count:
                by_batch[size] = [float(count - was_count), (ns - was_ns) / NS]
        found.append(
            ModelDelta(
                model=model,
                requests=delta.requests,
                inferences=delta.inferences,
                executions=delta.executions,
                queue_s=delta.queue_ns / NS,
                request_compute_s=(
                    delta.compute_input_ns + delta.compute_infer_ns + delta.compute_output_ns
                )
                / NS,
                execution_compute_s=delta.batch_compute_ns / NS,
                by_batch=by_batch,
            )
        )
    return found
