"""The upscale scenario: real photos (JPEG, 256² and 512²) upscaled ×4 through the gateway as a
client does it, through Triton direct and the seeds' way, at each concurrency; and one model's
single-image latency (concurrency 1, one size) on a second gateway serving it."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Final

from perf import direct, gateway_paths, seeds
from perf.budget import Step
from perf.measure import FactoryBuilder, warm_up
from perf.overheads import upscale_cost
from perf.realistic_context import Context, Key
from perf.realistic_results import DIRECT, GATEWAY, SEEDS, UPSCALE
from perf.realistic_stack import PREPOST

# Guesses for the budget before anything is measured (2-core AVX2 EPYC, 2 threads).
SERVED_S_PER_TILE: Final = {"realesr_general_x4v3": 0.45, "realesrgan_x4plus": 6.0}
SEEDS_S_PER_MEGAPIXEL: Final = {"realesr_general_x4v3": 42.0, "realesrgan_x4plus": 300.0}
TINY_GUESS_S: Final = 0.5
LOAD_GUESS_S: Final = 15.0  # a PyTorch model's weights (x4plus converts the ncnn files)
WARM_SIDE: Final = 64  # the seeds' warm-up call: PyTorch on CPU compiles nothing per shape


def guess(ctx: Context, model: str, side: int, path: str) -> float:
    if ctx.options.tiny:
        return TINY_GUESS_S
    if path == SEEDS:
        return SEEDS_S_PER_MEGAPIXEL.get(model, 100.0) * side * side / 1e6 + 0.3
    tiles = math.ceil(side / ctx.tile) ** 2
    return tiles * SERVED_S_PER_TILE.get(model, 2.0) + 0.5


def watched(model: str) -> list[str]:
    return [f"upscale_{model}", model, *PREPOST]


def builder(ctx: Context, model: str, side: int, path: str) -> FactoryBuilder:
    if path == GATEWAY:
        url = ctx.gateway_url(model)
        uploads = ctx.uploads(side)
        return lambda recorder: gateway_paths.upscale_factory(
            url, uploads, ctx.options.poll_interval_s, recorder
        )
    if path == DIRECT:
        images = ctx.images(side)
        return lambda recorder: direct.upscale_factory(
            ctx.stack.grpc_url,
            model,
            images,
            recorder,
            tile=ctx.tile,
            tile_pad=ctx.tile_pad,
            pre_pad=ctx.pre_pad,
        )
    module = ctx.torch_model(model)
    uploads = ctx.uploads(side)
    return lambda recorder: seeds.upscale_factory(module, uploads, recorder)


def add_cost(ctx: Context, model: str, side: int) -> None:
    upload = ctx.uploads(side)[0]
    ctx.costs.append(upscale_cost(upload, model, ctx.tile, ctx.tile_pad, ctx.pre_pad, runs=5))


def warm(ctx: Context, model: str, side: int, paths: Sequence[str]) -> None:
    """One full request per served path (Triton allocates per shape); the seeds' model one
    small call (its first call sets up threads and allocator)."""
    for path in paths:
        key: Key = (UPSCALE, model, side, path)
        if path == SEEDS:
            warm_torch(ctx.torch_model(model))
        elif ctx.options.warmup > 0:
            started = time.monotonic()
            warm_up(builder(ctx, model, side, path), ctx.options.warmup)
            ctx.seconds[key] = (time.monotonic() - started) / ctx.options.warmup
        ctx.warmed.add(key)


def warm_torch(module: object) -> None:
    import torch

    with torch.inference_mode():
        module(torch.rand(1, 3, WARM_SIDE, WARM_SIDE))  # type: ignore[operator]


def run_point(ctx: Context, key: Key, level: int, requests: int) -> None:
    ctx.require_warm(key)
    _, model, side, path = key
    ctx.measure_case(
        key,
        level,
        requests,
        builder(ctx, model, side, path),
        watched(model) if path != SEEDS else (),
    )


def paths_at(ctx: Context, level: int) -> list[str]:
    return [GATEWAY, *([DIRECT] if level in ctx.options.direct_levels else []), SEEDS]


def case_steps(ctx: Context, model: str, side: int) -> list[Step]:
    """In-process costs, warm-up, then every path at every level."""
    levels = ctx.options.levels
    paths = [p for p in (GATEWAY, DIRECT, SEEDS) if any(p in paths_at(ctx, c) for c in levels)]
    name = f"upscale {model} {side}²"
    warm_guess = sum(guess(ctx, model, side, p) for p in paths if p != SEEDS)
    load_guess = 0.0 if ctx.options.tiny else LOAD_GUESS_S
    steps = [
        Step(f"{name}: in-process costs", lambda: add_cost(ctx, model, side), lambda: 5.0),
        Step(
            f"{name}: warm-up",
            lambda: warm(ctx, model, side, paths),
            lambda: warm_guess * ctx.options.warmup + load_guess,
        ),
    ]
    for level in levels:
        for path in paths_at(ctx, level):
            steps.append(point_step(ctx, (UPSCALE, model, side, path), level))
    return steps


def point_step(ctx: Context, key: Key, level: int) -> Step:
    _, model, side, path = key
    requests = ctx.options.requests(level)
    first_guess = guess(ctx, model, side, path)
    return Step(
        f"upscale {model} {side}² c={level} {path}",
        lambda: run_point(ctx, key, level, requests),
        lambda: ctx.estimate(key, requests, first_guess),
    )


def latency_step(ctx: Context) -> Step:
    """The single-image case on its own gateway (the gateway serves one upscale model),
    started for it and stopped after: gateway and seeds' way at concurrency 1."""
    model, side = ctx.options.latency_model, ctx.options.latency_side
    requests = ctx.options.min_requests
    per_round = guess(ctx, model, side, GATEWAY) + guess(ctx, model, side, SEEDS)

    def run() -> None:
        settings = {**ctx.stack.settings, "FACET_UPSCALE_MODEL": model}
        ctx.gateways[model] = ctx.stack.start_extra_gateway("latency", settings)
        try:
            add_cost(ctx, model, side)
            warm(ctx, model, side, (GATEWAY, SEEDS))
            for path in (GATEWAY, SEEDS):
                run_point(ctx, (UPSCALE, model, side, path), 1, requests)
        finally:
            ctx.stack.stop_extra_gateways()
            ctx.gateways.pop(model, None)

    setup_guess = 0.0 if ctx.options.tiny else LOAD_GUESS_S + 10.0
    return Step(
        f"upscale {model} {side}² c=1: gateway and seeds (single-image latency)",
        run,
        lambda: per_round * requests + guess(ctx, model, side, GATEWAY) + setup_guess,
    )


def steps(ctx: Context) -> list[Step]:
    found = []
    for side in ctx.options.sizes:
        found += case_steps(ctx, ctx.options.sweep_model, side)
    if ctx.options.latency_model:
        found.append(latency_step(ctx))
    return found
