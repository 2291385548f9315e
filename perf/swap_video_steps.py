"""The steps of one face-swap video run, in order, each estimated before it runs so the budget
can skip what no longer fits:

  warm-up      the served models once from here (detector, embedder, latent, swapper), then a
               2-frame clip through the gateway, which also times detection and one swap
  batch costs  one swapper call of N faces vs N calls of one (client timing + Triton's)
  clip         the longest clip up to --seconds both paths can process in what is left (after
               the memory clip's share), written with PyAV
  facet        the clip through POST /process/video, Triton's counters around it
  baseline     the clip through FaceFusion's loop over the same Triton
  memory       a one-minute clip through a gateway, its and Triton's RSS sampled all along
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from perf.budget import Budget, SkipStep, Step
from perf.cpu import CpuMeter
from perf.leakcheck import noise_threshold
from perf.machine import load_average
from perf.memory import MemorySampler
from perf.realistic_stack import Stack
from perf.swap_video_baseline import (
    batch_costs,
    detect,
    make_latent,
    run_baseline,
    source_embedding,
    swap,
)
from perf.swap_video_clip import Clip, Inputs, frame_of, write_clip
from perf.swap_video_facet import describe_video, swap_through_gateway
from perf.swap_video_options import SwapVideoOptions
from perf.swap_video_plan import (
    ClipPlan,
    PathCosts,
    later_half,
    plan_clip,
    plan_memory,
    settled_sample,
    slope_per_minute,
)
from perf.swap_video_results import BASELINE, FACET, MemoryRun, PathRun, SwapVideoResults
from perf.swap_video_triton import Snapshot, deltas, snapshot

Image = npt.NDArray[np.uint8]
DETECTOR: Final = "face_detect_mtcnn"
WATCHED: Final = (
    DETECTOR,
    "mtcnn_pnet",
    "mtcnn_rnet",
    "mtcnn_onet",
    "swap_inswapper_128",
    "inswapper_128",
    "image_to_tensor",
    "tensor_to_image",
    "swap_latent",
    "embed_arcface_w600k_r50",
    "arcface_w600k_r50",
    "face_to_tensor",
)
MIN_SCORE: Final = 0.5  # ProcessRequest's face_detector_score default
MAX_FACES: Final = 20  # SwapOptions' max_faces_per_frame default
FACES_PER_FRAME: Final = 2.0  # the clip's thirds: 1, 2, 3
# Guesses until the warm-up has measured (2-core AVX2 EPYC: inswapper ~4 s per face).
GUESS: Final = {
    "full": {"detect_s": 0.5, "swap_s": 4.5},
    "tiny": {"detect_s": 0.5, "swap_s": 0.05},
}
PER_FRAME_EXTRA_S: Final = 0.05  # decode, align, paste, encode: small beside the models
SAFETY: Final = 1.1  # estimates run a little over on a shared machine
END_RESERVE_S: Final = 30.0  # stopping the servers and writing the report
MEMORY_STACK_START_S: Final = 45.0  # the tiny stack's Triton and gateway, cold
CLIP_WRITE_S_PER_FRAME: Final = 0.05
WARM_FRAMES: Final = 2
SETTLE_SHARE: Final = 0.1


@dataclass
class Context:
    options: SwapVideoOptions
    budget: Budget
    inputs: Inputs
    results: SwapVideoResults
    stack: Stack | None = None
    stats_client: Any = None
    calibration: dict[str, float] = field(default_factory=dict)
    crops: Image | None = None
    latent: npt.NDArray[np.float32] | None = None
    plan: ClipPlan | None = None
    clip: Clip | None = None
    _source_rgb: Image | None = None

    @property
    def kind(self) -> str:
        return "tiny" if self.options.tiny else "full"

    def measured(self, name: str) -> float:
        return self.calibration.get(name, GUESS[self.kind][name])

    def source_rgb(self) -> Image:
        from perf.overheads import decode

        if self._source_rgb is None:
            self._source_rgb = decode(self.inputs.source_jpeg).rgb
        return self._source_rgb

    def costs(self, path: str) -> PathCosts:
        """Seconds per frame and per face of a path, from what has been measured so far."""
        detect_s = self.measured("detect_s")
        one = self.calibration.get("swap_b1_s", self.measured("swap_s"))
        batched = self.calibration.get("swap_batched_s_per_face", one)
        per_face = batched if path == FACET else one
        return PathCosts(detect_s + PER_FRAME_EXTRA_S, per_face)

    def seconds_per_frame(self) -> float:
        both = self.costs(FACET).frame_s(FACES_PER_FRAME) + self.costs(BASELINE).frame_s(
            FACES_PER_FRAME
        )
        return SAFETY * both

    def memory_reserve_s(self) -> float:
        if not self.options.memory:
            return 0.0
        return self.options.memory_share * self.budget.total_s

    def require_stack(self) -> Stack:
        if self.stack is None or self.stack.gateway is None:
            raise SkipStep("the stack is not running")
        return self.stack

    def note(self, text: str) -> None:
        self.results.notes.append(text)


def work_dir(ctx: Context) -> Path:
    path = ctx.options.work / ("tiny" if ctx.options.tiny else "full")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- warm-up ---------------------------------------------------------------------------------


def warm(ctx: Context) -> None:
    """Every served model once, then timed: detection of a 3-face frame, one face through the
    swapper; then a 2-frame clip through the gateway (its first video job pays one-time costs)."""
    from clients.triton_grpc import FacetTritonClient
    from gateway.faces.swap_pipeline import cut_swap_crops, usable_faces

    stack = ctx.require_stack()
    frame = frame_of(ctx.inputs.photo, 2, 3)  # the 3-face window
    with FacetTritonClient(stack.grpc_url, timeout_s=900.0) as client:
        embedding = source_embedding(client, ctx.source_rgb(), MIN_SCORE)
        ctx.latent = make_latent(client, embedding)
        detect(client, frame, MIN_SCORE)
        started = time.perf_counter()
        faces = usable_faces(detect(client, frame, MIN_SCORE), MIN_SCORE)
        ctx.calibration["detect_s"] = time.perf_counter() - started
        if not faces:
            raise RuntimeError("the served detector finds no face in the clip's 3-face frame")
        ctx.crops, _ = cut_swap_crops([frame], [(0, face) for face in faces], 128)
        swap(client, ctx.crops[:1], ctx.latent)
        started = time.perf_counter()
        swap(client, ctx.crops[:1], ctx.latent)
        ctx.calibration["swap_s"] = time.perf_counter() - started
    clip = write_clip(
        work_dir(ctx) / "warm.mp4", ctx.inputs.photo, WARM_FRAMES, ctx.options.fps, faces=1
    )
    started = time.perf_counter()
    swap_through_gateway(
        stack.gateway.url if stack.gateway else "",
        clip.path,
        ctx.inputs.source_jpeg,
        work_dir(ctx) / "warm-out.mp4",
        poll_s=ctx.options.poll_s,
    )
    ctx.calibration["warm_job_s"] = time.perf_counter() - started


def warm_estimate(ctx: Context) -> float:
    return 3 * ctx.measured("swap_s") + 3 * ctx.measured("detect_s") + 20.0


# --- batch costs -----------------------------------------------------------------------------


def run_batch_costs(ctx: Context) -> None:
    stack = ctx.require_stack()
    if ctx.crops is None or ctx.latent is None:
        raise SkipStep("the warm-up did not run")
    costs = batch_costs(
        stack.grpc_url,
        ctx.stats_client,
        ctx.crops,
        ctx.latent,
        ctx.options.batch_sizes,
        repeats_of_one=ctx.options.repeats_of_one,
    )
    ctx.results.batch_costs = costs
    ones = [c for c in costs if c.batch == 1]
    if ones:
        ctx.calibration["swap_b1_s"] = ones[0].median_ms / 1000.0
    batched = [c.ms_per_face for c in costs if c.batch > 1]
    if batched:
        ctx.calibration["swap_batched_s_per_face"] = min(batched) / 1000.0


def batch_estimate(ctx: Context) -> float:
    faces = sum(ctx.options.repeats_of_one if b == 1 else b for b in ctx.options.batch_sizes)
    estimate = faces * ctx.measured("swap_s") * SAFETY
    # The comparison is the point: this step may take at most a fifth of what is left.
    return estimate if estimate <= 0.2 * ctx.budget.left() else ctx.budget.left() + 1.0


# --- the clip --------------------------------------------------------------------------------


def make_clip(ctx: Context) -> None:
    spf = ctx.seconds_per_frame()
    left = ctx.budget.left() - ctx.memory_reserve_s() - END_RESERVE_S
    # Writing the clip costs time too; take it off before the paths share the rest.
    rounds = max(1, ctx.options.rounds)
    plan = plan_clip(
        ctx.options.seconds, ctx.options.fps, left, rounds * spf + CLIP_WRITE_S_PER_FRAME
    )
    ctx.plan = plan
    ctx.clip = write_clip(
        work_dir(ctx) / f"clip-{plan.frames}f.mp4", ctx.inputs.photo, plan.frames, plan.fps
    )
    ctx.results.clip = {
        "wanted_seconds": plan.wanted_seconds,
        "wanted_frames": plan.wanted_frames,
        "fps": plan.fps,
        "frames": plan.frames,
        "seconds": plan.seconds,
        "faces": ctx.clip.faces,
        "shortened": plan.shortened,
        "seconds_left": round(plan.seconds_left, 1),
        "seconds_per_frame_estimate": round(plan.seconds_per_frame, 3),
        "size_bytes": ctx.clip.size_bytes,
        "width": 854,
        "height": 480,
        "audio": "AAC mono 48 kHz, 440 Hz tone",
    }


# --- the two paths ---------------------------------------------------------------------------


@dataclass
class Around:
    """What surrounds one path's run: Triton's counters, CPU use and the load."""

    before: Snapshot
    meter: CpuMeter
    load_before: str


def begin(ctx: Context) -> Around:
    meter = CpuMeter()
    around = Around(snapshot(ctx.stats_client, WATCHED), meter, load_average())
    meter.start()
    return around


def finish(ctx: Context, around: Around, run: PathRun) -> PathRun:
    cpu = around.meter.stop()
    run.triton = deltas(around.before, snapshot(ctx.stats_client, WATCHED))
    run.own_cores, run.other_cores = cpu.own_cores, cpu.other_cores
    run.load_before, run.load_after = around.load_before, load_average()
    ctx.results.runs.append(run)
    return run


def path_estimate(ctx: Context, path: str) -> float:
    """The clip's frames at the path's cost: the calibration's, or what its last round took
    per frame when that was more (the machine may have got busier since)."""
    if ctx.plan is None:
        return 0.0
    per_frame = ctx.costs(path).frame_s(FACES_PER_FRAME)
    done = ctx.results.path_runs(path)
    if done and done[-1].frames:
        per_frame = max(per_frame, done[-1].wall_s / done[-1].frames)
    return ctx.plan.frames * per_frame


def require_clip(ctx: Context) -> Clip:
    if ctx.clip is None:
        raise SkipStep("no clip was written")
    return ctx.clip


def run_facet(ctx: Context, round_: int) -> None:
    stack, clip = ctx.require_stack(), require_clip(ctx)
    assert stack.gateway is not None
    output = work_dir(ctx) / f"facet-out-{round_}.mp4"
    around = begin(ctx)
    done = swap_through_gateway(
        stack.gateway.url, clip.path, ctx.inputs.source_jpeg, output, poll_s=ctx.options.poll_s
    )
    outcome = done.outcome
    seconds = dict(outcome.get("seconds", {}))
    run = PathRun(
        round=round_,
        path=FACET,
        frames=int(outcome.get("frames", 0)),
        faces_detected=int(outcome.get("faces_detected", 0)),
        faces_swapped=int(outcome.get("faces_processed", 0)),
        wall_s=done.wall_s,
        stages_s={
            "decode": float(seconds.get("decode", 0.0)),
            "encode": float(seconds.get("encode", 0.0)),
        },
        stage_sources={
            "decode": "the job's outcome: the decode thread's busy time",
            "encode": "the job's outcome: the encode thread's busy time",
        },
        extra={
            "job_seconds": seconds,
            "processing_time": done.status.get("processing_time"),
            "download_s": round(done.download_s, 3),
            "warning": done.status.get("warning"),
        },
    )
    finish(ctx, around, run)
    fill_facet_model_stages(run)
    run.output = describe_video(output)


def fill_facet_model_stages(run: PathRun) -> None:
    """Facet's detect, swap and latent stages from Triton: each model's compute summed over
    its executions (a batch counted once; the detector's two instances may overlap)."""
    parts = {
        "detect": (
            (DETECTOR,),
            "Triton: face_detect_mtcnn's executions' compute, summed over its instances (which "
            "run at once and wait on the MTCNN nets they share)",
        ),
        "swap": (
            ("inswapper_128", "image_to_tensor", "tensor_to_image"),
            "Triton: inswapper_128 (+ its uint8 ensemble's casts) executions' compute, summed",
        ),
        "latent": (("swap_latent",), "Triton: swap_latent's executions' compute, summed"),
    }
    for stage, (models, source) in parts.items():
        found = [run.model(m) for m in models]
        run.stages_s[stage] = sum(m.execution_compute_s for m in found if m is not None)
        run.stage_sources[stage] = source


def run_facefusion(ctx: Context, round_: int) -> None:
    stack, clip = ctx.require_stack(), require_clip(ctx)
    output = work_dir(ctx) / f"baseline-out-{round_}.mp4"
    around = begin(ctx)
    done = run_baseline(
        stack.grpc_url,
        clip.path,
        ctx.source_rgb(),
        output,
        min_score=MIN_SCORE,
        max_faces=MAX_FACES,
    )
    run = PathRun(
        round=round_,
        path=BASELINE,
        frames=done.frames,
        faces_detected=done.faces_detected,
        faces_swapped=done.faces_swapped,
        wall_s=done.wall_s,
        stages_s={k: round(v, 4) for k, v in done.timings.totals.items()},
        stage_sources={k: "timed in this process, one after another" for k in done.timings.totals},
        per_frame_ms=done.timings.frame_medians_ms(),
        per_face_ms=done.timings.face_medians_ms(),
        extra={"identity_s": round(done.identity_s, 3)},
    )
    finish(ctx, around, run)
    run.output = describe_video(output)


def estimate_facet_pixels(results: SwapVideoResults) -> None:
    """Facet aligns and pastes with the very functions the baseline timed: its align and paste
    seconds are the baseline's per-face medians times Facet's faces (in threads, overlapping)."""
    baseline = results.run(BASELINE)
    if baseline is None:
        return
    for facet in results.path_runs(FACET):
        for stage in ("align", "paste"):
            per_face = baseline.per_face_ms.get(stage)
            if per_face is not None:
                facet.stages_s[stage] = per_face / 1000.0 * facet.faces_swapped
                facet.stage_sources[stage] = (
                    "estimated: the baseline's median per face (the same gateway function) × faces"
                )


# --- memory ----------------------------------------------------------------------------------


def run_memory(ctx: Context) -> None:
    """A warm 9-frame clip times the gateway per frame; the memory clip then keeps its length
    and takes the frame rate the budget still affords, sampled every interval."""
    stack = ctx.require_stack()
    assert stack.gateway is not None
    gateway = stack.gateway
    folder = work_dir(ctx) / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    warm_clip = write_clip(folder / "warm.mp4", ctx.inputs.photo, 9, ctx.options.fps)
    started = time.perf_counter()
    swap_through_gateway(
        gateway.url,
        warm_clip.path,
        ctx.inputs.source_jpeg,
        folder / "warm-out.mp4",
        poll_s=ctx.options.poll_s,
    )
    per_frame = (time.perf_counter() - started) / warm_clip.frames + CLIP_WRITE_S_PER_FRAME
    plan = plan_memory(
        ctx.options.memory_seconds,
        ctx.options.memory_fps,
        ctx.budget.left() - END_RESERVE_S,
        SAFETY * per_frame,
    )
    clip = write_clip(folder / "clip.mp4", ctx.inputs.photo, plan.frames, plan.fps)
    sampler = MemorySampler(
        {"gateway": stack.gateway_pid, "triton": stack.triton_pid},
        interval_s=ctx.options.sample_interval_s,
    )
    started = time.perf_counter()
    with sampler.running():
        done = swap_through_gateway(
            gateway.url,
            clip.path,
            ctx.inputs.source_jpeg,
            folder / "out.mp4",
            poll_s=ctx.options.poll_s,
        )
    wall = time.perf_counter() - started
    samples: dict[str, list[list[float]]] = {}
    for seconds, process, rss in sampler.timeline:
        samples.setdefault(str(process), []).append([float(seconds), float(rss)])
    reason = memory_reason(ctx, plan.fps, plan.seconds, per_frame)
    ctx.results.memory = MemoryRun(
        tiny=True,  # the full inswapper cannot do a minute of video in any budget here
        seconds=plan.seconds,
        fps=plan.fps,
        frames=clip.frames,
        faces=int(done.outcome.get("faces_processed", 0)),
        wall_s=wall,
        interval_s=ctx.options.sample_interval_s,
        samples=samples,
        peak_mb={p: max(v for _, v in s) for p, s in samples.items()},
        start_mb={p: s[0][1] for p, s in samples.items()},
        settled_mb={p: settled_sample(pairs(s), wall, SETTLE_SHARE)[1] for p, s in samples.items()},
        end_mb={p: s[-1][1] for p, s in samples.items()},
        slope_mb_per_min={p: slope_per_minute(pairs(s)) for p, s in samples.items()},
        later_slope_mb_per_min={
            p: slope_per_minute(later_half(pairs(s))) for p, s in samples.items()
        },
        threshold_mb={
            p: noise_threshold(settled_sample(pairs(s), wall, SETTLE_SHARE)[1])
            for p, s in samples.items()
        },
        reason=reason,
    )


def pairs(samples: list[list[float]]) -> list[tuple[float, float]]:
    return [(t, v) for t, v in samples]


def memory_reason(ctx: Context, fps: int, seconds: float, per_frame: float) -> str:
    swap_s = ctx.calibration.get("swap_b1_s", ctx.measured("swap_s"))
    if ctx.options.tiny:
        models = "tiny synthetic swap models (--tiny) beside the real MTCNN"
    else:
        full_min = ctx.options.memory_seconds * ctx.options.memory_fps * FACES_PER_FRAME * swap_s
        models = (
            "tiny synthetic swap models beside the real MTCNN, because the full inswapper "
            f"({swap_s:.1f} s per face here) would need about {full_min / 60:.0f} min for "
            f"{ctx.options.memory_seconds:g} s at {ctx.options.memory_fps} fps; the gateway's "
            "video pipeline (decode, windows, paste, encode, audio) is the same code either way"
        )
    parts = [models]
    if fps < ctx.options.memory_fps:
        parts.append(
            f"{fps} fps instead of {ctx.options.memory_fps}: the gateway took {per_frame:.2f} s "
            "per frame on the warm-up clip with these models, and the budget left afforded no more"
        )
    if seconds < ctx.options.memory_seconds:
        parts.append(f"shortened to {seconds:g} s (below 1 fps the minute would not fit)")
    return "; ".join(parts)


def memory_estimate(ctx: Context) -> float:
    # It adapts its frame rate to what is left; it only needs room for its warm-up.
    return 9 * (ctx.measured("detect_s") + 0.1) + 10.0


# --- the lists -------------------------------------------------------------------------------


def comparison_steps(ctx: Context) -> list[Step]:
    return [
        Step(
            "warm-up: models, a 2-frame clip through the gateway",
            lambda: warm(ctx),
            lambda: warm_estimate(ctx),
            required=True,
        ),
        Step(
            "swapper: a batch of N vs N calls",
            lambda: run_batch_costs(ctx),
            lambda: batch_estimate(ctx),
        ),
        Step("clip: length from the budget, written", lambda: make_clip(ctx), lambda: 5.0),
        *(step for round_ in range(1, ctx.options.rounds + 1) for step in round_steps(ctx, round_)),
    ]


def round_steps(ctx: Context, round_: int) -> list[Step]:
    """Both paths over the clip; odd rounds Facet first, even rounds FaceFusion's way first, so
    a load that changes during the run falls on both alike."""
    facet = Step(
        f"Facet: POST /process/video (round {round_})",
        lambda: run_facet(ctx, round_),
        lambda: path_estimate(ctx, FACET),
    )
    baseline = Step(
        f"FaceFusion's way over the same Triton (round {round_})",
        lambda: run_facefusion(ctx, round_),
        lambda: path_estimate(ctx, BASELINE),
    )
    return [facet, baseline] if round_ % 2 else [baseline, facet]


def memory_steps(ctx: Context) -> list[Step]:
    return [Step("memory clip", lambda: run_memory(ctx), lambda: memory_estimate(ctx))]


def wait_for_load(limit: float, longest_s: float, poll_s: float = 15.0) -> tuple[float, str]:
    """Wait until the 1-minute load average is at most `limit` (at most `longest_s`); returns
    the seconds waited and the load then."""
    started = time.monotonic()
    while os.getloadavg()[0] > limit and time.monotonic() - started < longest_s:
        time.sleep(poll_s)
    return time.monotonic() - started, load_average()
