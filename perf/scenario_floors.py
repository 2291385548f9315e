"""The floors scenario: the served models at their serving shape (x4plus on 148² tiles, GFPGAN
on 512² faces; batch 1, then 4) on ONNX Runtime FP32 and OpenVINO FP32 in-process and on the
served model through Triton. Inputs are real: windows of the upscale photos, the group photo's
aligned faces."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from perf import floors
from perf.budget import Step
from perf.photos import UPSCALE_PHOTOS, square_photo
from perf.realistic_context import Context
from perf.realistic_results import RUNTIMES, TRITON_SERVED
from perf.realistic_stack import FLOOR_MODELS, RESTORER

PHOTO_SIDE: Final = 512
TILE_CORNERS: Final = ((100, 100), (300, 200), (180, 40), (40, 300))
FACE_SIDE: Final = 512
# Guesses for the budget before anything is measured (2-core AVX2 EPYC, 2 threads).
SECONDS_PER_ITEM: Final = {"realesrgan_x4plus": 6.0, RESTORER: 3.5}
BUILD_S: Final = {"realesrgan_x4plus": 5.0, RESTORER: 25.0}
TINY_GUESS_S: Final = 0.5


def window(ctx: Context) -> int:
    return ctx.tile + 2 * ctx.tile_pad


def tiles(ctx: Context) -> Any:
    """Four windows of the gateway's shape cut from the upscale photos, N×S×S×3 uint8."""
    side = window(ctx)
    crops = []
    for index, (top, left) in enumerate(TILE_CORNERS):
        photo = square_photo(UPSCALE_PHOTOS[index % len(UPSCALE_PHOTOS)], PHOTO_SIDE)
        crops.append(photo[top : top + side, left : left + side])
    return np.stack(crops)


def faces(ctx: Context) -> Any:
    """The group photo's faces aligned as the gateway aligns them, N×512×512×3 uint8 (the
    astronaut's face when the photo has none)."""
    from gateway.faces.align import FFHQ_TEMPLATE_512, estimate_affine
    from gateway.faces.restore_pipeline import crop_faces
    from perf.overheads import decode

    landmarks = ctx.landmarks()
    if not landmarks:
        return square_photo("astronaut", FACE_SIDE)[None]
    rgb = decode(ctx.group().upload.data).rgb
    affines = [estimate_affine(np.asarray(points), FFHQ_TEMPLATE_512) for points in landmarks]
    return crop_faces(rgb, affines[:4])


def inputs(ctx: Context, model: str, cache: dict[str, Any]) -> Any:
    if model not in cache:
        if model == RESTORER:
            cache[model] = floors.face_inputs(faces(ctx))
        else:
            cache[model] = floors.sr_inputs(tiles(ctx))
    return cache[model]


def item_name(ctx: Context, model: str) -> str:
    return f"{FACE_SIDE}² face" if model == RESTORER else f"{window(ctx)}² tile"


def measure(
    ctx: Context, runner: floors.InProcess, cache: dict[str, Any], model: str, runtime: str, b: int
) -> None:
    data = inputs(ctx, model, cache)
    runs = ctx.options.floor_runs
    if runtime == TRITON_SERVED:
        found = floors.served(
            ctx.stack.grpc_url, ctx.repository, model, item_name(ctx, model), data, b, runs
        )
    else:
        found = runner.measure(model, item_name(ctx, model), runtime, data, b, runs)
    ctx.floors.append(found)


def guess(ctx: Context, model: str, runtime: str, batch: int, built: set[tuple[str, str]]) -> float:
    if ctx.options.tiny:
        return TINY_GUESS_S
    measured = [f.ms_per_item for f in ctx.floors if f.model == model]
    per_item = min(measured) / 1000.0 if measured else SECONDS_PER_ITEM.get(model, 5.0)
    build = 0.0 if (model, runtime) in built or runtime == TRITON_SERVED else BUILD_S[model]
    return per_item * batch * (ctx.options.floor_runs + 1) + build


def steps(ctx: Context) -> list[Step]:
    runner = floors.InProcess(ctx.repository)
    cache: dict[str, Any] = {}
    built: set[tuple[str, str]] = set()
    found = []
    for batch in ctx.options.floor_batches:
        for model in FLOOR_MODELS:
            for runtime in RUNTIMES:
                found.append(step(ctx, runner, cache, built, model, runtime, batch))
    found.append(Step("floors: release in-process sessions", runner.release, lambda: 0.0, True))
    return found


def step(
    ctx: Context,
    runner: floors.InProcess,
    cache: dict[str, Any],
    built: set[tuple[str, str]],
    model: str,
    runtime: str,
    batch: int,
) -> Step:
    def run() -> None:
        measure(ctx, runner, cache, model, runtime, batch)
        built.add((model, runtime))

    return Step(
        f"floors {model} {item_name(ctx, model)} batch {batch} {runtime}",
        run,
        lambda: guess(ctx, model, runtime, batch, built),
    )
