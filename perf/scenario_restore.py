"""The restore scenario: a real group photo (≥ 5 faces) through POST /restore as a client sends
it, through Triton direct (the gateway's pipeline over gRPC) and the seeds' way (GFPGANer-style:
the same MTCNN in-process, the PyTorch GFPGAN once per face), one request at a time."""

from __future__ import annotations

import time
from typing import Final

import numpy as np

from perf import direct, gateway_paths, seeds
from perf.budget import Step
from perf.measure import FactoryBuilder, Recorder, warm_up
from perf.overheads import decode, restore_cost
from perf.realistic_context import MIN_SCORE, WEIGHT, Context, Key
from perf.realistic_results import DIRECT, GATEWAY, RESTORE, SEEDS
from perf.realistic_stack import (
    DETECTOR,
    DETECTOR_NETS,
    FACE_PREPOST,
    RESTORE_ENSEMBLE,
    RESTORER,
)

MIN_FACES: Final = 5
# Guesses for the budget before anything is measured (2-core AVX2 EPYC, 2 threads).
SERVED_S_PER_FACE: Final = 3.0
SEEDS_S_PER_FACE: Final = 12.0
FACES_GUESS: Final = 6
TINY_GUESS_S: Final = 1.0
PATHS: Final = (GATEWAY, DIRECT, SEEDS)
WATCHED: Final = (DETECTOR, *DETECTOR_NETS, RESTORE_ENSEMBLE, RESTORER, *FACE_PREPOST)


def key(ctx: Context, path: str) -> Key:
    upload = ctx.group().upload
    return (RESTORE, RESTORER, max(upload.width, upload.height), path)


def faces(ctx: Context) -> int:
    found = [cost.model_inputs for cost in ctx.costs if cost.scenario == RESTORE]
    return found[0] if found else FACES_GUESS


def guess(ctx: Context, path: str) -> float:
    if ctx.options.tiny:
        return TINY_GUESS_S
    per_face = SEEDS_S_PER_FACE if path == SEEDS else SERVED_S_PER_FACE
    return faces(ctx) * per_face + 2.0


def builder(ctx: Context, path: str) -> FactoryBuilder:
    upload = ctx.group().upload
    upscale = ctx.options.restore_upscale
    if path == GATEWAY:
        url = ctx.gateway_url(ctx.options.sweep_model)
        return lambda recorder: gateway_paths.restore_factory(
            url, upload, recorder, upscale=upscale, weight=WEIGHT, min_score=MIN_SCORE
        )
    if path == DIRECT:
        image = decode(upload.data).rgb
        return lambda recorder: direct.restore_factory(
            ctx.stack.grpc_url,
            DETECTOR,
            RESTORE_ENSEMBLE,
            image,
            recorder,
            upscale=upscale,
            weight=WEIGHT,
            min_score=MIN_SCORE,
        )
    module = ctx.torch_model(RESTORER)
    return lambda recorder: seeds.restore_factory(
        module, upload, recorder, upscale=upscale, weight=WEIGHT, min_score=MIN_SCORE
    )


def prepare(ctx: Context) -> None:
    """The group photo, its faces (in-process MTCNN, the pipeline's selection) and the
    gateway's non-model work on it."""
    group = ctx.group()
    landmarks = ctx.landmarks()
    ctx.costs.append(
        restore_cost(group.upload, RESTORER, landmarks, ctx.options.restore_upscale, runs=5)
    )
    ctx.notes.append(
        f"Restore input: {group.source}, {group.upload.width}×{group.upload.height}, "
        f"{len(group.upload.data):,} bytes; the in-process MTCNN keeps {len(landmarks)} faces."
    )
    if len(landmarks) < MIN_FACES:
        ctx.notes.append(
            f"The group photo has {len(landmarks)} faces the pipeline keeps, fewer than the "
            f"{MIN_FACES} the restore target is defined on."
        )


def warm(ctx: Context) -> None:
    """One full request through the gateway (it warms Triton's detector and GFPGAN too); the
    seeds' detector and one face through the PyTorch GFPGAN."""
    if ctx.options.warmup > 0:
        started = time.monotonic()
        warm_up(builder(ctx, GATEWAY), ctx.options.warmup)
        seconds = (time.monotonic() - started) / ctx.options.warmup
        ctx.seconds[key(ctx, GATEWAY)] = ctx.seconds[key(ctx, DIRECT)] = seconds
    module = ctx.torch_model(RESTORER)
    recorder = Recorder()
    seeds.PackageMtcnn(recorder).raw(decode(ctx.group().upload.data).rgb)
    face = np.full((512, 512, 3), 128, dtype=np.uint8)
    seeds.TorchPerFaceRestorer(module, recorder).restore_one(face)
    if "face_ms" in recorder.values:
        per_face = recorder.medians()["face_ms"] / 1000.0
        ctx.seconds[key(ctx, SEEDS)] = faces(ctx) * per_face + 1.0
    for path in PATHS:
        ctx.warmed.add(key(ctx, path))


def run_path(ctx: Context, path: str) -> None:
    case = key(ctx, path)
    ctx.require_warm(case)
    watched = WATCHED if path != SEEDS else ()
    run = ctx.measure_case(case, 1, ctx.options.restore_requests, builder(ctx, path), watched)
    restored = run.notes.get("faces", 0.0)
    if restored < MIN_FACES:
        ctx.notes.append(f"restore via {path}: {restored:g} faces restored per photo (median).")


def path_step(ctx: Context, path: str) -> Step:
    requests = ctx.options.restore_requests
    return Step(
        f"restore group photo c=1 {path}",
        lambda: run_path(ctx, path),
        lambda: ctx.estimate(key(ctx, path), requests, guess(ctx, path)),
    )


def steps(ctx: Context) -> list[Step]:
    load = 0.0 if ctx.options.tiny else 10.0
    return [
        Step("restore: group photo, faces, in-process costs", lambda: prepare(ctx), lambda: 10.0),
        Step(
            "restore: warm-up",
            lambda: warm(ctx),
            lambda: guess(ctx, GATEWAY) * ctx.options.warmup + load + SEEDS_S_PER_FACE,
        ),
        *(path_step(ctx, path) for path in PATHS),
    ]
