"""The user-level benchmark (`python -m perf.benchmark --full`): what users do, measured in one
run on one machine under a global time budget.

Scenarios, in the order they run (`--scenarios` picks some):
  upscale   real JPEG photos (256², 512²) ×4 through the gateway (submit → poll → download),
            Triton direct and the seeds' whole-image PyTorch way, at concurrency 1, 4, 8; one
            x4plus photo at concurrency 1 for single-image latency
  restore   a group photo (≥ 5 faces) through POST /restore, Triton direct and the seeds'
            GFPGANer-style way (PyTorch once per face)
  memory    the gateway's RSS before and after 1,000 small requests
  floors    x4plus 148² tiles and GFPGAN 512² faces, batch 1 and 4, on ONNX Runtime FP32 and
            OpenVINO FP32 in-process and through Triton
Peak RSS of Triton (with its stubs), the gateway and this process is sampled throughout.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from perf import scenario_floors, scenario_memory, scenario_restore, scenario_upscale
from perf.budget import Budget, Step, StepRunner
from perf.floors import config_thread_budget, served_backend
from perf.machine import describe, machine_tag
from perf.realistic_context import Context
from perf.realistic_options import RealisticOptions
from perf.realistic_report import write_report
from perf.realistic_results import (
    FLOORS,
    MEMORY,
    RESTORE,
    UPSCALE,
    MemoryPeak,
    RealisticResults,
    Setup,
)
from perf.realistic_stack import Stack, gateway_settings, prepare_repository, running, served_models
from perf.report import Target
from perf.seeds import read_manifest

ROOT = Path(__file__).resolve().parents[1]
ORDER = (UPSCALE, RESTORE, MEMORY, FLOORS)  # memory before the floors: it needs the gateway


def build_steps(ctx: Context) -> list[Step]:
    builders = {
        UPSCALE: scenario_upscale.steps,
        RESTORE: scenario_restore.steps,
        MEMORY: scenario_memory.steps,
        FLOORS: scenario_floors.steps,
    }
    steps: list[Step] = []
    for scenario in ORDER:
        if scenario in ctx.options.scenarios:
            steps += builders[scenario](ctx)
    return steps


def tile_geometry(settings: dict[str, str]) -> tuple[int, int, int]:
    return (
        int(settings["FACET_TILE_SIZE"]),
        int(settings["FACET_TILE_PAD"]),
        int(settings["FACET_PRE_PAD"]),
    )


def run_realistic(options: RealisticOptions) -> tuple[RealisticResults, Path, list[Target]]:
    import tritonclient.grpc as grpcclient

    from triton_core.tiling import DEFAULT_PRE_PAD, DEFAULT_TILE, DEFAULT_TILE_PAD

    budget = Budget(options.budget_s)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = describe()
    served = served_models(options.scenarios, options.sweep_model, options.latency_model)
    say(f"repository: {len(served)} models for {', '.join(options.scenarios)}")
    repository = prepare_repository(served, options.repository, options.work, tiny=options.tiny)
    settings = {
        **gateway_settings(options.sweep_model, DEFAULT_TILE, DEFAULT_TILE_PAD, DEFAULT_PRE_PAD),
        **options.gateway_env,
    }
    stack = Stack(repository, options.work, served, settings)
    runner = StepRunner(budget, show_progress=options.show_progress)
    say("starting Triton (every model of the run) and the gateway")
    with running(stack, options.sample_interval_s):
        assert stack.sampler is not None and stack.gateway is not None
        sampler = stack.sampler
        runner.on_step = lambda name: setattr(sampler, "step", name)
        ctx = Context(options, stack, *tile_geometry(settings))
        ctx.stats_client = grpcclient.InferenceServerClient(stack.grpc_url)
        ctx.gateways[options.sweep_model] = stack.gateway
        try:
            runner.run(build_steps(ctx))
        finally:
            ctx.stats_client.close()
    results = assemble(options, ctx, stack, runner, machine.as_dict(), started_at, served)
    results.duration_s = budget.elapsed()
    results.machine["load_average_end"] = describe().load_average
    stem = f"{started_at[:10]}-{options.tag or machine_tag(machine)}-realistic"
    if options.tiny:
        stem += "-tiny"
    markdown, targets = write_report(results, options.out, stem)
    raw = options.out / "raw" / f"{stem}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results.as_dict(), indent=1, default=str))
    return results, markdown, targets


def assemble(
    options: RealisticOptions,
    ctx: Context,
    stack: Stack,
    runner: StepRunner,
    machine: dict[str, object],
    started_at: str,
    served: list[str],
) -> RealisticResults:
    repository = stack.repository
    floats = [
        m
        for m in served
        if read_manifest(repository, m).get("weights_kind", "none") not in ("none", None)
    ]
    sampler = stack.sampler
    memory = []
    if sampler is not None:
        for name, peak in sampler.peaks.items():
            memory.append(
                MemoryPeak(
                    process=name,
                    peak_rss_mb=round(peak.rss_mb, 1),
                    peak_pss_mb=round(peak.pss_mb, 1),
                    processes=peak.processes,
                    peak_step=peak.step,
                    by_step={k: round(v, 1) for k, v in sampler.step_peaks.get(name, {}).items()},
                )
            )
    setup = Setup(
        repository=display_path(repository),
        tiny=options.tiny,
        scenarios=list(options.scenarios),
        budget_s=options.budget_s,
        sizes=list(options.sizes),
        levels=list(options.levels),
        direct_levels=list(options.direct_levels),
        sweep_model=options.sweep_model,
        latency_model=options.latency_model,
        latency_side=options.latency_side,
        requests={level: options.requests(level) for level in options.levels},
        restore_requests=options.restore_requests,
        restore_photo=ctx.group_source(),
        restore_upscale=options.restore_upscale,
        floor_runs=options.floor_runs,
        floor_batches=list(options.floor_batches),
        weights={m: str(read_manifest(repository, m).get("weights_kind", "?")) for m in floats},
        threads={m: config_thread_budget(repository, m) for m in floats},
        served_runtime={m: served_backend(repository, m) for m in floats},
        gateway_settings=dict(stack.settings),
        tile=ctx.tile,
        tile_pad=ctx.tile_pad,
        pre_pad=ctx.pre_pad,
    )
    notes = list(ctx.notes)
    if UPSCALE in options.scenarios:
        notes.append(
            f"Upscale clients poll /status as Facet's REST client does: after "
            f"{options.poll_interval_s:g} s, then 1.5× later each time, up to every 2 s; 'poll "
            "slack' is how long a finished job waited for its client's next poll. At c > 1 the "
            "seeds' way runs its requests in c threads of this process sharing one model, whose "
            "PyTorch intra-op pool has the served model's thread count (torch.set_num_threads)."
        )
    notes.append(
        f"Load average (1, 5, 15 min) at start {machine.get('load_average')}; the `cores` "
        "columns give, per point, the cores our processes used and the cores other work on the "
        "machine took (medians over repeats)."
    )
    return RealisticResults(
        started_at=started_at,
        duration_s=0.0,
        machine=dict(machine),
        setup=setup,
        runs=ctx.runs,
        costs=ctx.costs,
        floors=ctx.floors,
        memory=memory,
        leak=ctx.leak,
        timeline=[list(entry) for entry in sampler.timeline] if sampler else [],
        skipped=[{"step": s.name, "reason": s.reason} for s in runner.skipped],
        failed=[{"step": s.name, "reason": s.reason} for s in runner.failed],
        notes=notes,
    )


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def render_saved(raw: Path, out: Path | None) -> tuple[RealisticResults, Path, list[Target]]:
    results = RealisticResults.from_dict(json.loads(raw.read_text()))
    directory = out or raw.resolve().parent.parent
    markdown, targets = write_report(results, directory, raw.stem)
    return results, markdown, targets
