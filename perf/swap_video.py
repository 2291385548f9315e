"""Video face swap through the gateway against FaceFusion's way, in one bounded run.

  python -m perf.swap_video            # the issue's clip (10 s, 480p, 30 fps, 1–3 faces), ≤ 23 min
  python -m perf.swap_video --tiny     # smoke run: tiny swap models, 1 s clip, about a minute
  python -m perf.benchmark --full --scenarios swap_video   # the same, from the benchmark

Facet's way: the clip (real faces from insightface's t1.jpg, panning, with an audio track) and
a source photo through POST /process/video to a gateway in front of Triton serving the full
synthetic swap models (arcface_w600k_r50, swap_latent, inswapper_128) and the real MTCNN.
FaceFusion's way: the same clip decoded frame by frame here, each frame detected, each face
aligned, swapped alone and pasted back, each frame encoded, one after another, over the same
Triton and with the gateway's own functions (perf.swap_video_baseline). Both runs are timed
per stage; Triton's counters show how the swapper was batched; a batch of N faces is timed
against N calls of one. Then a one-minute clip goes through a gateway on tiny models while its
and Triton's RSS are sampled (the full inswapper costs ~4 s per face here: a minute of video
would take hours).

The budget (--budget-min) bounds the whole run: the clip is shortened to what both paths can
process in the time left (the report says to what), and the memory clip lowers its frame rate.
Reports go to perf/reports/<date>-<machine>-swap-video.md with PNG plots, raw JSON in raw/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from perf.budget import Budget, StepRunner
from perf.machine import describe, load_average, machine_tag
from perf.realistic_stack import DETECTOR, DETECTOR_NETS, Stack, missing_models, running
from perf.seeds import read_manifest
from perf.servers import build_repository, read_config
from perf.swap_video_clip import SOURCE_CROP, WINDOWS, load_inputs
from perf.swap_video_facet import REQUEST
from perf.swap_video_options import ROOT, SwapVideoOptions, add_arguments, from_args
from perf.swap_video_report import targets, write_report
from perf.swap_video_results import SwapVideoResults
from perf.swap_video_steps import (
    END_RESERVE_S,
    MEMORY_STACK_START_S,
    Context,
    comparison_steps,
    estimate_facet_pixels,
    memory_steps,
    wait_for_load,
)

SWAP_EXPORTS: Final = ("arcface_w600k_r50", "swap_latent", "inswapper_128")
SERVED: Final = (
    *SWAP_EXPORTS,
    "embed_arcface_w600k_r50",
    "face_to_tensor",
    "swap_inswapper_128",
    "image_to_tensor",
    "tensor_to_image",
    DETECTOR,
    *DETECTOR_NETS,
)
FLOAT_MODELS: Final = (*SWAP_EXPORTS, *DETECTOR_NETS)
GATEWAY_SETTINGS: Final = {"FACET_TRITON_TIMEOUT_S": "900", "FACET_MAX_PENDING_JOBS": "10"}
PHOTO_CACHE: Final = ROOT / "build" / "perf" / "insightface"


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --- repositories ----------------------------------------------------------------------------


def full_repository(options: SwapVideoOptions) -> Path:
    """The full synthetic swap models and the real MTCNN: `--repository` when complete, else
    exported under the work folder (models from --reuse-exports copied in first)."""
    root = options.repository or options.work / "repository"
    if root.is_dir() and not missing_models(SERVED, root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    reuse = options.reuse_exports
    if reuse is not None and reuse.resolve() != root.resolve():
        for model in SERVED:
            source, target = reuse / model, root / model
            if (source / "manifest.json").is_file() and not target.exists():
                say(f"reusing {source}")
                shutil.copytree(source, target)
    say("exporting what is missing (inswapper_128 alone takes ~4 min on 2 cores)")
    build_repository(root, [*SWAP_EXPORTS, DETECTOR], tiny=False, weights="auto")
    return root


def tiny_repository(options: SwapVideoOptions) -> Path:
    root = options.work / "tiny-repository"
    root.mkdir(parents=True, exist_ok=True)
    build_repository(root, list(SWAP_EXPORTS), tiny=True, weights="synthetic")
    build_repository(root, [DETECTOR], tiny=False, weights="auto")
    return root


def describe_repository(root: Path) -> dict[str, Any]:
    """What the report says about the served models (from their manifests and configs)."""
    swapper = read_config(root / "inswapper_128" / "config.pbtxt")
    batching = swapper.dynamic_batching
    return {
        "weights": {m: read_manifest(root, m).get("weights_kind", "?") for m in FLOAT_MODELS},
        "threads": {m: config_threads(root, m) for m in FLOAT_MODELS},
        "backends": {m: read_config(root / m / "config.pbtxt").backend for m in FLOAT_MODELS},
        "max_batch_size": {
            m: read_config(root / m / "config.pbtxt").max_batch_size
            for m in ("swap_inswapper_128", "inswapper_128", "swap_latent", DETECTOR)
        },
        "instances": {
            m: sum(g.count for g in read_config(root / m / "config.pbtxt").instance_group)
            for m in (DETECTOR, "inswapper_128", *DETECTOR_NETS)
        },
        "swapper_batching": (
            f"preferred {list(batching.preferred_batch_size)}, max queue delay "
            f"{batching.max_queue_delay_microseconds} µs, {len(swapper.instance_group)} "
            "instance group(s)"
        ),
    }


def source_state() -> dict[str, Any]:
    """The commit measured and the files changed in the checkout then (others edit it too)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    changed = [line.split(maxsplit=1)[-1] for line in git("status", "--porcelain").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "changed_files": changed}


def config_threads(root: Path, model: str) -> int:
    from perf.floors import config_thread_budget

    return config_thread_budget(root, model)


def make_stack(repository: Path, work: Path) -> Stack:
    return Stack(repository, work, list(SERVED), dict(GATEWAY_SETTINGS))


# --- the run ---------------------------------------------------------------------------------


def run_swap_video(options: SwapVideoOptions) -> tuple[SwapVideoResults, Path]:
    import tritonclient.grpc as grpcclient

    from gateway.settings import Settings

    setup: dict[str, Any] = {
        "tiny": options.tiny,
        "budget_s": options.budget_s,
        "batch_sizes": options.batch_sizes,
        "rounds": options.rounds,
        "poll_s": options.poll_s,
        "request": json.dumps(REQUEST),
        "window_frames": int(
            os.environ.get("FACET_VIDEO_WINDOW_FRAMES")
            or Settings.model_fields["video_window_frames"].default
        ),
        "gateway_settings": dict(GATEWAY_SETTINGS),
        "clip_source": "insightface t1.jpg (insightface==2.1 wheel), windows "
        + ", ".join(
            f"{k} face(s): {w.width}×{w.height} at ({w.left}, {w.top})" for k, w in WINDOWS.items()
        )
        + ", scaled to 854×480, panned ±20 px at 2 px per frame",
        "source": f"t1.jpg cropped to {SOURCE_CROP} (a face never in the clip), JPEG q95",
    }
    # Exports are not measurements: they and any wait for the load come before the budget.
    say("preparing the model repository")
    prepared = time.monotonic()
    repository = tiny_repository(options) if options.tiny else full_repository(options)
    setup["repository"] = display_path(repository)
    setup["repository_prepared_s"] = round(time.monotonic() - prepared, 1)
    setup |= describe_repository(repository)
    setup |= source_state()
    if options.wait_load is not None:
        say(
            f"waiting (up to {options.wait_load_s:.0f} s) for the load to fall to "
            f"{options.wait_load}; now {load_average()}"
        )
        waited, load = wait_for_load(options.wait_load, options.wait_load_s)
        setup |= {
            "waited_for_load_s": waited,
            "wait_load": options.wait_load,
            "wait_load_s": options.wait_load_s,
            "load_after_wait": load,
        }
    budget = Budget(options.budget_s)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = describe()
    setup["load_at_start"] = machine.load_average
    results = SwapVideoResults(started_at, 0.0, machine.as_dict(), setup)
    ctx = Context(options, budget, load_inputs(PHOTO_CACHE), results)
    runner = StepRunner(budget, show_progress=options.show_progress)
    stack = make_stack(repository, options.work / ("tiny" if options.tiny else "full"))
    say(f"starting Triton ({len(SERVED)} models) and the gateway")
    with stack_running(stack, options) as up:
        ctx.stack = up
        ctx.stats_client = grpcclient.InferenceServerClient(up.grpc_url)
        sampler = up.sampler
        if sampler is not None:
            runner.on_step = lambda name: setattr(sampler, "step", name)
        try:
            steps = comparison_steps(ctx)
            if options.tiny and options.memory:
                steps += memory_steps(ctx)
            runner.run(steps)
        finally:
            ctx.stats_client.close()
        if sampler is not None:
            results.full_stack_peaks = {
                name: {step: round(mb, 1) for step, mb in peaks.items()}
                for name, peaks in sampler.step_peaks.items()
            }
    if options.memory and not options.tiny:
        run_memory_stack(ctx, runner)
    estimate_facet_pixels(results)
    results.calibration = {k: round(v, 4) for k, v in ctx.calibration.items()}
    results.skipped = [{"step": s.name, "reason": s.reason} for s in runner.skipped]
    results.failed = [{"step": s.name, "reason": s.reason} for s in runner.failed]
    results.duration_s = budget.elapsed()
    setup["load_at_end"] = load_average()
    stem = f"{started_at[:10]}-{options.tag or machine_tag(machine)}-swap-video"
    if options.tiny:
        stem += "-tiny"
    markdown = write_report(results, options.out, stem)
    raw = options.out / "raw" / f"{stem}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results.as_dict(), indent=1, default=str))
    return results, markdown


def stack_running(stack: Stack, options: SwapVideoOptions) -> AbstractContextManager[Stack]:
    return running(stack, options.sample_interval_s)


def run_memory_stack(ctx: Context, runner: StepRunner) -> None:
    """The memory clip on its own tiny-model stack, if the budget still has room to start it."""
    left = ctx.budget.left()
    if left < MEMORY_STACK_START_S + END_RESERVE_S + 30.0:
        from perf.budget import SkippedStep

        runner.skipped.append(
            SkippedStep("memory: a one-minute clip", f"{left:.0f} s left: no room to start it")
        )
        return
    say("memory: starting a Triton on tiny swap models and a gateway")
    stack = make_stack(tiny_repository(ctx.options), ctx.options.work / "memory")
    ctx.results.setup["memory_repository"] = display_path(stack.repository)
    with stack_running(stack, ctx.options) as up:
        ctx.stack = up
        runner.run(memory_steps(ctx))


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def render_saved(raw: Path, out: Path | None, memory_from: Path | None = None) -> Path:
    """The report of a saved run again; `memory_from` takes the memory section of another
    saved run (for a run whose budget ran out before its memory clip), and says so."""
    results = SwapVideoResults.from_dict(json.loads(raw.read_text()))
    if memory_from is not None:
        borrow_memory(
            results, SwapVideoResults.from_dict(json.loads(memory_from.read_text())), memory_from
        )
    directory = out or raw.resolve().parent.parent
    return write_report(results, directory, raw.stem)


def borrow_memory(results: SwapVideoResults, other: SwapVideoResults, source: Path) -> None:
    if other.memory is None:
        raise SystemExit(f"{source} has no memory section")
    results.memory = other.memory
    results.memory.from_run = other.started_at
    ratio = other.fps_ratio
    frames = other.runs[0].frames if other.runs else 0
    loads = ", ".join(f"{r.load_before} → {r.load_after}" for r in other.runs)
    results.notes.append(
        f"The memory section is that of an earlier run of this benchmark on this machine "
        f"(started {other.started_at}, raw `{display_path(source)}`): this run's budget had "
        f"no room left for its memory clip. That run's own comparison, one round of "
        f"{frames} frames per path with the 1-minute load at {loads}, measured "
        f"{'–' if ratio is None else f'{ratio:.2f}'}; the memory step's code is the same."
    )
    results.skipped = [s for s in results.skipped if not s["step"].startswith("memory")] + [
        {"step": s["step"] + " (this run)", "reason": s["reason"] + "; shown from the earlier run"}
        for s in results.skipped
        if s["step"].startswith("memory")
    ]


def print_summary(results: SwapVideoResults, markdown: Path) -> None:
    say(f"report: {markdown}")
    for target in targets(results):
        value = "–" if target.value is None else f"{target.value:.2f}"
        say(f"{target.name}: {value} (target ≥ {target.target:g}): {target.status}")
    for run in results.runs:
        say(
            f"{run.path}: {run.frames} frames in {run.wall_s:,.1f} s = {run.fps:.4f} fps; "
            f"stages {', '.join(f'{k} {v:,.1f} s' for k, v in run.stages_s.items())}"
        )
    memory = results.memory
    if memory is not None:
        for process in sorted(memory.peak_mb):
            say(
                f"memory {process}: peak {memory.peak_mb[process]:,.0f} MiB, growth "
                f"{memory.growth_mb(process):+.1f} MiB, "
                f"{'flat' if memory.flat(process) else 'grows'}"
            )
    for skipped in results.skipped:
        say(f"skipped: {skipped['step']} ({skipped['reason']})")
    for failed in results.failed:
        say(f"FAILED: {failed['step']}: {failed['reason']}")
    say(f"took {results.duration_s:.0f} s")


def succeeded(results: SwapVideoResults) -> bool:
    return not results.failed and results.fps_ratio is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perf.swap_video",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        say(f"report: {render_saved(args.render, args.out, args.memory_from)}")
        return 0
    results, markdown = run_swap_video(from_args(args))
    print_summary(results, markdown)
    return 0 if succeeded(results) else 1


if __name__ == "__main__":
    sys.exit(main())
