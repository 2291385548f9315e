"""The face-swap video benchmark's report: the targets with the measured ratios, where the time
goes in each path, Triton's batching, the swapper's batch costs, memory, and PNG plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from perf.report import (
    Target,
    fmt,
    fmt_ms,
    pyplot,
    render_closing_sections,
    render_machine,
    save_figure,
    table,
)
from perf.stats import median, ratio
from perf.swap_video_results import (
    BASELINE,
    FACET,
    PATH_LABELS,
    STAGES,
    PathRun,
    SwapVideoResults,
)

FPS_TARGET: Final = 1.5
BUSY_MACHINE: Final = 0.2  # other work's cores above which the report warns
SMALL_GAIN: Final = 1.15  # per-face gain of a batch below which batching "saves little"
SWAPPER: Final = "inswapper_128"
DETECTOR: Final = "face_detect_mtcnn"


# --- targets ---------------------------------------------------------------------------------


def fps_target(results: SwapVideoResults) -> Target:
    facet, baseline = results.fps_of(FACET), results.fps_of(BASELINE)
    detail = "frames/s through POST /process/video ÷ FaceFusion's loop over the same Triton"
    if facet and baseline:
        frames = results.path_runs(FACET)[0].frames
        detail += (
            f", median of {plural(len(facet), 'round')} each over the same {frames}-frame clip: "
            f"{median(facet):.4f} ÷ {median(baseline):.4f} (rounds: Facet "
            f"{', '.join(f'{v:.4f}' for v in facet)}; FaceFusion's way "
            f"{', '.join(f'{v:.4f}' for v in baseline)})"
        )
    return Target(
        key="swap_video_fps",
        name="video face swap fps, Facet / FaceFusion's way (CPU)",
        value=results.fps_ratio,
        target=FPS_TARGET,
        detail=detail,
        why=explain_fps(results),
    )


def memory_rows(results: SwapVideoResults) -> list[list[str]]:
    memory = results.memory
    if memory is None:
        return [["memory flat over the clip", "–", "–", "not measured", "the step did not run"]]
    rows = []
    for process in sorted(memory.peak_mb):
        rows.append(
            [
                f"{process} RSS flat over a {memory.seconds:g} s clip"
                + (" (earlier run)" if memory.from_run else ""),
                f"{memory.growth_mb(process):+.1f} MiB",
                f"≤ {memory.threshold_mb[process]:.1f} MiB",
                "flat" if memory.flat(process) else "grows",
                f"last sample − the settled one ({memory.settled_mb[process]:,.0f} → "
                f"{memory.end_mb[process]:,.0f} MiB; peak {memory.peak_mb[process]:,.0f}); the "
                f"later half's fitted line rises {memory.drift_mb(process):.1f} MiB",
            ]
        )
    return rows


def explain_fps(results: SwapVideoResults) -> list[str]:
    facet, baseline = results.run(FACET), results.run(BASELINE)
    if facet is None or baseline is None:
        return []
    swap_b = baseline.stages_s.get("swap", 0.0)
    lines = [
        f"Per frame: Facet {facet.wall_s / max(facet.frames, 1):.2f} s, FaceFusion's way "
        f"{baseline.wall_s / max(baseline.frames, 1):.2f} s ({baseline.faces_swapped} faces "
        f"swapped by each: {baseline.faces_swapped / max(baseline.frames, 1):.2f} per frame).",
        f"The swapper is {swap_b / baseline.wall_s:.0%} of FaceFusion's way ({swap_b:,.1f} s; "
        f"{fmt_ms(baseline.per_face_ms.get('swap'))} ms per face at batch 1, median).",
    ]
    served = facet.model(SWAPPER)
    if served is not None and served.inferences:
        lines.append(
            f"In Facet, Triton ran {served.inferences} faces through {SWAPPER} in "
            f"{plural(served.executions, 'execution')} (average batch "
            f"{fmt(served.average_batch)}), "
            f"{1000 * served.execution_compute_s / served.inferences:,.0f} ms of compute per "
            f"face; {served.execution_compute_s / facet.wall_s:.0%} of Facet's wall time."
        )
    lines += batching_line(results)
    others = sum(baseline.stages_s.get(s, 0.0) for s in ("decode", "align", "paste", "encode"))
    lines.append(
        f"What overlap can hide: FaceFusion's way spent {others:,.1f} s decoding, aligning, "
        f"pasting and encoding and {baseline.stages_s.get('detect', 0.0):,.1f} s detecting; "
        f"Facet's decode and encode threads worked {facet.stages_s.get('decode', 0.0):,.1f} s "
        f"and {facet.stages_s.get('encode', 0.0):,.1f} s beside the models."
    )
    pairs = paired_rounds(results)
    reference = evenly_loaded(results, pairs)
    lines += bound_line(results, pairs, reference, facet, baseline)
    lines += caveat_line(results, pairs, reference)
    return lines


def batching_line(results: SwapVideoResults) -> list[str]:
    costs = {c.batch: c for c in results.batch_costs}
    if 1 not in costs or len(costs) < 2:
        return []
    largest = costs[max(costs)]
    gain = ratio(costs[1].ms_per_face, largest.ms_per_face)
    if gain is None or gain >= SMALL_GAIN:
        verdict = "batching pays this much per face"
    elif gain >= 1 / SMALL_GAIN:
        verdict = "the swapper is compute bound, batching saves little"
    else:
        verdict = (
            "a batch costs more per face than single calls here: the swapper is compute "
            "bound and runs slower per face on larger batches on this CPU"
        )
    return [
        f"Batching on this machine: one call of {largest.batch} faces costs "
        f"{largest.ms_per_face:,.0f} ms per face against {costs[1].ms_per_face:,.0f} ms for "
        f"a call of one ({fmt(gain)}× per face): {verdict}."
    ]


Pair = tuple[int, PathRun, PathRun, float | None]


def bound_line(
    results: SwapVideoResults,
    pairs: list[Pair],
    reference: Pair | None,
    facet: PathRun,
    baseline: PathRun,
) -> list[str]:
    bound = bound_ratio(reference[1], reference[2]) if reference else bound_ratio(facet, baseline)
    if bound is None:
        return []
    if results.fps_ratio is not None and results.fps_ratio >= FPS_TARGET:
        why = "the target is met"
    elif bound < FPS_TARGET:
        why = (
            f"so no overlap can reach {FPS_TARGET:g}×: that needs a cheaper swap per face "
            "(a device on which batching pays, or a faster CPU kernel)"
        )
    else:
        why = (
            "so the gap is in what Facet does not overlap with the swapper: within a window, "
            "detection, the swap and paste-back run one after another; only decoding and "
            "encoding run beside them"
        )
    per_round = ""
    if len(pairs) > 1:
        shown = ", ".join(f"{n}: {fmt(bound_ratio(f, b))}×" for n, f, b, _ in pairs)
        per_round = f" (per round: {shown})"
    where = f"in round {reference[0]}, the most evenly loaded, " if reference else ""
    return [
        f"Bound: FaceFusion's wall time ÷ Facet's swapper compute, {where}= {bound:.2f}×"
        f"{per_round}: the ratio if every other stage were hidden behind the swapper; {why}."
    ]


def caveat_line(results: SwapVideoResults, pairs: list[Pair], reference: Pair | None) -> list[str]:
    if reference is None:
        return []
    busy = [r.other_cores for r in results.runs]
    shown = "; ".join(
        f"round {n}: {fmt(value)} (other work {f.other_cores:.2f} cores during Facet's run, "
        f"{b.other_cores:.2f} during FaceFusion's way)"
        for n, f, b, value in pairs
    )
    return [
        f"Caveat: other work on the machine took {min(busy):.2f}–{max(busy):.2f} of its "
        f"{results.machine.get('cores')} cores during the runs (load averages in Machine), and "
        f"not evenly. Per round, Facet's fps ÷ FaceFusion's: {shown}. The most evenly loaded "
        f"pair, round {reference[0]}, gives {fmt(reference[3])}."
    ]


def paired_rounds(results: SwapVideoResults) -> list[Pair]:
    """Each round's two runs (they ran back to back) and Facet's fps ÷ FaceFusion's in it."""
    pairs = []
    baselines = {r.round: r for r in results.path_runs(BASELINE)}
    for facet in results.path_runs(FACET):
        baseline = baselines.get(facet.round)
        if baseline is not None:
            pairs.append((facet.round, facet, baseline, ratio(facet.fps, baseline.fps)))
    return pairs


def evenly_loaded(results: SwapVideoResults, pairs: list[Pair]) -> Pair | None:
    """On a busy machine, the round whose two runs met the most similar other work: the
    fairest comparison there is; None on a quiet machine or without rounds."""
    busy = [r.other_cores for r in results.runs]
    if not pairs or not busy or max(busy) <= BUSY_MACHINE:
        return None
    return min(pairs, key=lambda pair: abs(pair[1].other_cores - pair[2].other_cores))


def bound_ratio(facet: PathRun, baseline: PathRun) -> float | None:
    served = facet.model(SWAPPER)
    if served is None or served.execution_compute_s <= 0:
        return None
    return ratio(baseline.wall_s, served.execution_compute_s)


def targets(results: SwapVideoResults) -> list[Target]:
    return [fps_target(results)]


# --- markdown --------------------------------------------------------------------------------


def render_markdown(results: SwapVideoResults, plots: Sequence[Path]) -> str:
    machine, setup = results.machine, results.setup
    title = "tiny smoke run" if setup.get("tiny") else "480p clip, 1–3 faces"
    lines = [
        f"# Facet face-swap video benchmark ({title}), {results.started_at[:10]}",
        "",
        "Generated by `python -m perf.swap_video`. One run on one machine "
        f"({machine.get('cpu_model')}, {machine.get('cores')} cores, GPU: {machine.get('gpu')}): "
        "the same clip with real faces through the gateway's POST /process/video as a client "
        "sends it, and through FaceFusion's per-frame, per-face loop over the same Triton and "
        "the gateway's own alignment, paste-back and video I/O functions, so the paths differ "
        "only in batching and overlap. Per-frame and per-face values are medians; each path "
        "processed the whole clip once per round, the rounds alternating which went first.",
        "",
        "## Targets",
        "",
    ]
    fps = fps_target(results)
    rows = [[fps.name, fmt(fps.value), f"≥ {fmt(fps.target)}", fps.status, fps.detail]]
    lines += table(["target", "value", "target", "status", "how"], rows + memory_rows(results))
    if fps.why:
        lines += ["", f"**{fps.name}: {fps.status}; where the time goes**", ""]
        lines += [f"- {line}" for line in fps.why]
    lines += ["", "## What was shortened", "", *render_shortened(results)]
    lines += ["", "## Machine", "", *render_machine(machine), *render_loads(results)]
    lines += ["", "## Setup", "", *render_setup(results)]
    if results.runs:
        lines += ["", "## Both paths", "", *render_runs(results)]
        lines += ["", "## Where the time goes", "", *render_stages(results)]
        lines += ["", "## Triton's statistics during each path", "", *render_triton(results)]
    if results.batch_costs:
        lines += ["", "## The swapper: one call of N faces vs N calls", ""]
        lines += render_batches(results)
    lines += ["", "## Memory", "", *render_memory(results)]
    lines += render_closing_sections(results.skipped, results.failed, plots, results.notes)
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "python -m perf.swap_video            # --budget-min 23, --seconds 10, --fps 30; --help",
        "python -m perf.swap_video --tiny     # smoke run, about a minute",
        "python -m perf.benchmark --full --scenarios swap_video",
        "```",
        "",
    ]
    return "\n".join(lines)


def render_shortened(results: SwapVideoResults) -> list[str]:
    clip, lines = results.clip, []
    if clip:
        if clip.get("shortened"):
            lines.append(
                f"The clip was shortened from {clip['wanted_seconds']:g} s "
                f"({clip['wanted_frames']} frames at {clip['fps']} fps) to "
                f"{clip['seconds']:.2f} s ({clip['frames']} frames, {clip['faces']} faces): "
                f"every run of both paths ({results.setup.get('rounds', 1)} round(s)) at "
                f"~{clip['seconds_per_frame_estimate']:.1f} s per clip frame together "
                "(estimated from the warm-up's and the batch step's timings) had "
                f"{clip['seconds_left']:,.0f} s of the budget left. The shortened clip keeps "
                "the same thirds (1, 2, 3 faces)."
            )
        else:
            lines.append(
                f"The clip ran at its full length: {clip['seconds']:.2f} s, {clip['frames']} "
                f"frames at {clip['fps']} fps."
            )
    memory = results.memory
    if memory is not None:
        where = f" (from the run started {memory.from_run})" if memory.from_run else ""
        lines.append(
            f"Memory clip{where}: {memory.seconds:g} s at {memory.fps} fps; {memory.reason}."
        )
    for skipped in results.skipped:
        lines.append(f"Skipped: {skipped['step']} ({skipped['reason']}).")
    return [f"- {line}" for line in lines] or ["- nothing"]


def render_loads(results: SwapVideoResults) -> list[str]:
    lines = ["", "Load average (1, 5, 15 min) around each path:", ""]
    start = results.setup.get("load_at_start")
    if start:
        lines.append(f"- at the start of the run: {start}")
    waited = results.setup.get("waited_for_load_s")
    if waited is not None:
        lines.append(
            f"- waited {waited:.0f} s for the 1-minute load to fall to "
            f"{results.setup.get('wait_load')} (longest wait {results.setup.get('wait_load_s')} s)"
        )
    for run in results.runs:
        lines.append(
            f"- {run.path}, round {run.round}: {run.load_before} before, {run.load_after} after"
        )
    end = results.setup.get("load_at_end")
    if end:
        lines.append(f"- at the end: {end}")
    return lines


def render_setup(results: SwapVideoResults) -> list[str]:
    s, clip = results.setup, results.clip
    items = [
        f"repository `{s.get('repository')}`; budget {s.get('budget_s', 0) / 60:g} min, took "
        f"{results.duration_s / 60:.1f} min",
        f"clip: 854×480 H.264 + {clip.get('audio', 'AAC')}, {clip.get('fps')} fps, "
        f"{s.get('clip_source')}",
        f"source face: {s.get('source')}",
        f"request: {s.get('request')}; the gateway's window: {s.get('window_frames')} frames "
        "per transform call",
        f"weights: {fmt_dict(s.get('weights', {}))}",
        f"threads per model: {fmt_dict(s.get('threads', {}))}; served by: "
        f"{fmt_dict(s.get('backends', {}))}",
        f"instances: {fmt_dict(s.get('instances', {}))}",
        f"batch limits: {fmt_dict(s.get('max_batch_size', {}))}; {SWAPPER} dynamic batching: "
        f"{s.get('swapper_batching')}",
        f"gateway: {fmt_dict(s.get('gateway_settings', {}))}",
        f"swapper batch sizes timed: {s.get('batch_sizes')}; rounds per path: "
        f"{s.get('rounds', 1)} (alternating which path goes first)",
        f"checkout: commit {s.get('commit')}; {describe_changes(s.get('changed_files', []))}",
    ]
    if results.calibration:
        items.append(f"calibration (s): {fmt_dict(results.calibration, 3)}")
    return [f"- {item}" for item in items]


def describe_changes(files: Sequence[str]) -> str:
    """Uncommitted files at the time (others edit the checkout too); this benchmark's own
    perf/ and test files are counted, not listed."""
    own = [f for f in files if f.startswith(("perf/", "tests/unit/test_perf_"))]
    others = [f for f in files if f not in own]
    listed = ", ".join(others) if others else "none"
    return f"uncommitted outside perf/: {listed}; under perf/ and its tests: {len(own)} file(s)"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def fmt_dict(values: Mapping[str, object], digits: int = 0) -> str:
    def show(value: object) -> str:
        if isinstance(value, float) and digits:
            return f"{value:.{digits}f}"
        return str(value)

    return ", ".join(f"{k}: {show(v)}" for k, v in sorted(values.items())) or "–"


def render_runs(results: SwapVideoResults) -> list[str]:
    rows = []
    several = len(results.runs) > len({r.path for r in results.runs})
    combined = [r for r in (results.run(FACET), results.run(BASELINE)) if r is not None]
    for run in [*results.runs, *(combined if several else [])]:
        out = run.output
        rows.append(
            [
                PATH_LABELS[run.path],
                str(run.round) if run.round else "all",
                str(run.frames),
                f"{run.faces_swapped} / {run.faces_detected}",
                f"{run.wall_s:,.1f}",
                f"{run.fps:.4f}",
                f"{run.wall_s / max(run.frames, 1):.2f}",
                f"{run.own_cores:.1f} / {run.other_cores:.1f}",
                f"{out.get('frames')} frames, {out.get('video_codec')}, audio "
                f"{out.get('audio') or 'none'}"
                if out and run.round
                else "",
            ]
        )
    lines = table(
        [
            "path",
            "round",
            "frames",
            "faces swapped / detected",
            "wall s",
            "fps",
            "s per frame",
            "cores ours / other",
            "output (read back)",
        ],
        rows,
    )
    lines += [
        "",
        f"Rounds run in the order {round_order(results)}. Facet's wall time runs from the "
        f"upload to the finished status (polled every {results.setup.get('poll_s')} s).",
    ]
    for facet in results.path_runs(FACET):
        if facet.extra.get("job_seconds"):
            lines += [
                "",
                f"Facet, round {facet.round}: the job itself "
                f"{fmt_dict(facet.extra['job_seconds'], 2)} s (its outcome's `seconds`), "
                f"processing_time {facet.extra.get('processing_time')} s; the download took "
                f"{facet.extra.get('download_s')} s more.",
            ]
    identity = [str(b.extra.get("identity_s")) for b in results.path_runs(BASELINE)]
    if identity:
        lines += [
            "",
            f"FaceFusion's way: the source identity took {', '.join(identity)} s (once per "
            "round), inside its wall time as Facet's is inside its request.",
        ]
    return lines


def round_order(results: SwapVideoResults) -> str:
    return ", ".join(f"{r.path} {r.round}" for r in results.runs)


def render_stages(results: SwapVideoResults) -> list[str]:
    facet, baseline = results.run(FACET), results.run(BASELINE)
    rows = []
    for stage in STAGES:
        row = [stage]
        for run in (facet, baseline):
            if run is None or stage not in run.stages_s:
                row += ["–", "–"]
                continue
            seconds = run.stages_s[stage]
            row += [f"{seconds:,.2f}", f"{seconds / run.wall_s:.0%}" if run.wall_s else "–"]
        row.append(fmt_ms(baseline.per_frame_ms.get(stage)) if baseline else "–")
        row.append(fmt_ms(baseline.per_face_ms.get(stage)) if baseline else "–")
        rows.append(row)
    sums = ["sum"]
    for run in (facet, baseline):
        total = sum(run.stages_s.values()) if run is not None else None
        share = total / run.wall_s if run is not None and total is not None and run.wall_s else None
        sums += [fmt(total), f"{share:.0%}" if share is not None else "–"]
    rows.append([*sums, "", ""])
    lines = table(
        [
            "stage",
            "Facet s",
            "of Facet's wall",
            "FaceFusion's way s",
            "of its wall",
            "FaceFusion ms per frame (median)",
            "ms per face (median)",
        ],
        rows,
    )
    if facet is not None:
        lines += [
            "",
            "Where Facet's numbers come from (its stages overlap, so they may add up "
            "to more than its wall time):",
            "",
        ]
        lines += [f"- {stage}: {source}" for stage, source in facet.stage_sources.items()]
        seconds = facet.extra.get("job_seconds", {})
        if seconds:
            lines.append(
                f"- the job's `models` time (the event loop awaiting each window's transform: "
                f"detection, alignment, swap, paste) was {seconds.get('models')} s of its "
                f"{seconds.get('total')} s"
            )
    if baseline is not None:
        rest = baseline.wall_s - sum(baseline.stages_s.values())
        lines += [
            "",
            f"FaceFusion's way: stages timed back to back in this process; {rest:,.2f} s of its "
            "wall time is outside them (the source identity, opening the files).",
        ]
    return lines


def render_triton(results: SwapVideoResults) -> list[str]:
    rows = []
    combined = [r for r in (results.run(FACET), results.run(BASELINE)) if r is not None]
    for run in combined:
        for model in sorted(run.triton, key=lambda m: m.model):
            rows.append(
                [
                    run.path,
                    model.model,
                    str(model.requests),
                    str(model.inferences),
                    str(model.executions),
                    fmt(model.average_batch),
                    f"{model.execution_compute_s:,.2f}",
                    f"{model.request_compute_s:,.2f}",
                    f"{model.queue_s:,.2f}",
                ]
            )
    lines = [
        "Counters read over gRPC before and after each path's run, summed over its rounds. "
        "Execution compute counts a batch once; request compute charges the whole batch to each "
        "request in it.",
        "",
    ]
    lines += table(
        [
            "path",
            "model",
            "requests",
            "inferences",
            "executions",
            "avg batch",
            "execution compute s",
            "request compute s",
            "queue s",
        ],
        rows,
    )
    sizes = []
    for run in combined:
        served = run.model(SWAPPER)
        if served is None:
            continue
        for size, (count, seconds) in sorted(served.by_batch.items()):
            per_execution = 1000 * seconds / count if count else None
            per_face = per_execution / size if per_execution is not None else None
            sizes.append(
                [run.path, str(size), f"{count:.0f}", fmt_ms(per_execution), fmt_ms(per_face)]
            )
    if sizes:
        lines += ["", f"{SWAPPER} by batch size (Triton's batch statistics):", ""]
        lines += table(["path", "batch", "executions", "ms per execution", "ms per face"], sizes)
    return lines


def render_batches(results: SwapVideoResults) -> list[str]:
    costs = {c.batch: c for c in results.batch_costs}
    one = costs.get(1)
    rows = []
    for batch, cost in sorted(costs.items()):
        n_calls = one.median_ms * batch if one else None
        rows.append(
            [
                str(batch),
                str(len(cost.calls_ms)),
                fmt_ms(cost.median_ms),
                fmt_ms(cost.ms_per_face),
                fmt_ms(n_calls),
                fmt(ratio(n_calls, cost.median_ms)),
                fmt_ms(cost.server_ms_per_face),
            ]
        )
    lines = [
        "swap_inswapper_128 (uint8 ensemble) called from this process with N aligned crops of "
        "the clip's faces; Triton's compute is inswapper_128's for that one execution.",
        "",
    ]
    return lines + table(
        [
            "N",
            "calls",
            "ms per call (median)",
            "ms per face",
            "N calls of one (ms)",
            "N calls ÷ one call",
            "Triton compute per face (ms)",
        ],
        rows,
    )


def render_memory(results: SwapVideoResults) -> list[str]:
    memory = results.memory
    lines = [] if memory is not None else ["The memory clip did not run."]
    if memory is not None:
        if memory.from_run:
            lines += [f"From the run started {memory.from_run} (see Notes).", ""]
        lines += [
            f"A {memory.seconds:g} s clip at {memory.fps} fps ({memory.frames} frames, "
            f"{memory.faces} faces swapped) through POST /process/video, RSS of each process "
            f"tree sampled every {memory.interval_s:g} s from the upload to the finished status "
            f"({memory.wall_s:,.0f} s); {memory.reason}.",
            "",
        ]
        rows = [
            [
                process,
                f"{memory.start_mb[process]:,.1f}",
                f"{memory.settled_mb[process]:,.1f}",
                f"{memory.peak_mb[process]:,.1f}",
                f"{memory.end_mb[process]:,.1f}",
                f"{memory.growth_mb(process):+.1f}",
                fmt(memory.slope_mb_per_min.get(process), 2),
                fmt(memory.later_slope_mb_per_min.get(process), 2),
                f"{memory.drift_mb(process):.1f}",
                f"{memory.threshold_mb[process]:.1f}",
                "flat" if memory.flat(process) else "grows",
            ]
            for process in sorted(memory.peak_mb)
        ]
        lines += table(
            [
                "process",
                "first MiB",
                "settled MiB",
                "peak MiB",
                "last MiB",
                "growth MiB",
                "slope MiB/min",
                "slope, later half",
                "later half's rise MiB",
                "flat within MiB",
                "verdict",
            ],
            rows,
        )
        lines += [
            "",
            "First: before the upload; settled: the first sample after a tenth of the job's "
            "time (upload received, the pipeline's bounded buffers filled); last: after the job "
            "ended. Flat means: last − settled, and the rise of the least-squares line over "
            "the later half of the samples, both within max(10 MiB, 5 % of the settled sample) "
            "(perf.leakcheck's noise threshold). Triton counts with its Python-backend stubs.",
        ]
    if results.full_stack_peaks:
        models = "tiny" if results.setup.get("tiny") else "full"
        lines += [
            "",
            f"Peak RSS per step on the comparison's stack ({models} models; MiB, process tree "
            "summed; `benchmark` is this process, without children):",
            "",
        ]
        steps = sorted({s for peaks in results.full_stack_peaks.values() for s in peaks})
        rows = [
            [
                step,
                *(
                    fmt(results.full_stack_peaks[p].get(step), 0)
                    for p in sorted(results.full_stack_peaks)
                ),
            ]
            for step in steps
        ]
        lines += table(["step", *sorted(results.full_stack_peaks)], rows)
    return lines or ["not measured"]


# --- plots -----------------------------------------------------------------------------------


def plot_stages(results: SwapVideoResults, destination: Path) -> Path | None:
    runs = [r for r in (results.run(FACET), results.run(BASELINE)) if r is not None]
    if not runs:
        return None
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4.0))
    for row, run in enumerate(runs):
        left = 0.0
        for stage in STAGES:
            width = run.stages_s.get(stage, 0.0) / max(run.frames, 1)
            axis.barh(
                row,
                width,
                left=left,
                label=stage if row == 0 else None,
                color=f"C{STAGES.index(stage)}",
            )
            left += width
        wall = run.wall_s / max(run.frames, 1)
        axis.plot(
            [wall, wall],
            [row - 0.4, row + 0.4],
            color="black",
            linewidth=2,
            label="wall time per frame" if row == 0 else None,
        )
    axis.set_yticks(range(len(runs)), [r.path for r in runs])
    axis.set(
        xlabel="seconds per frame (Facet's stages overlap: busy time)",
        title="Where the time goes, per frame (all rounds)",
    )
    axis.grid(alpha=0.3, axis="x")
    axis.legend(fontsize=7, ncol=8, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    return save_figure(figure, destination)


def plot_batches(results: SwapVideoResults, destination: Path) -> Path | None:
    costs = sorted(results.batch_costs, key=lambda c: c.batch)
    if not costs:
        return None
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    sizes = [c.batch for c in costs]
    axis.plot(sizes, [c.ms_per_face for c in costs], marker="o", label="client, per face")
    server = [(c.batch, c.server_ms_per_face) for c in costs if c.server_ms_per_face]
    if server:
        axis.plot(
            [b for b, _ in server],
            [v for _, v in server],
            marker="s",
            label="Triton compute, per face",
        )
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(s) for s in sizes])
    axis.set(xlabel="faces per swapper call", ylabel="ms per face", title="inswapper_128 batches")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, destination)


def plot_memory(results: SwapVideoResults, destination: Path) -> Path | None:
    memory = results.memory
    if memory is None or not memory.samples:
        return None
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4))
    for process, samples in sorted(memory.samples.items()):
        axis.plot([t for t, _ in samples], [v for _, v in samples], label=process)
    axis.set(
        xlabel="seconds since the upload",
        ylabel="RSS (MiB, process tree summed)",
        title=f"Memory during a {memory.seconds:g} s clip ({memory.frames} frames)",
    )
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, destination)


def write_report(results: SwapVideoResults, directory: Path, stem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    made = [
        plot_stages(results, directory / f"{stem}-stages.png"),
        plot_batches(results, directory / f"{stem}-batches.png"),
        plot_memory(results, directory / f"{stem}-memory.png"),
    ]
    plots = [p for p in made if p is not None]
    markdown = directory / f"{stem}.md"
    markdown.write_text(render_markdown(results, plots))
    return markdown
