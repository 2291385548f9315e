"""The issue's targets, computed from a user-level run's medians, each with where the time
goes when it is missed.

- served model throughput ≥ 1.5× in-process ONNX Runtime FP32 (x4plus 148² tiles, GFPGAN 512²
  faces): the served model's best items/s through Triton ÷ ORT FP32 at batch 1;
- Facet restore of a ≥ 5-face group photo ≥ 3× the seeds' per-face PyTorch way, end to end;
- Facet upscale through the gateway ≥ 1.5× the seeds' whole-image PyTorch way at concurrency 8;
- gateway overhead ≤ 15 % over Triton direct, image coding excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from perf.realistic_results import (
    DIRECT,
    FLOORS,
    GATEWAY,
    ORT_F32,
    OV_F32,
    RESTORE,
    SEEDS,
    TRITON_SERVED,
    UPSCALE,
    CaseRun,
    RealisticResults,
)
from perf.report import Target, fmt, fmt_ms
from perf.stats import median, ratio

SERVED_VS_ORT: Final = 1.5
RESTORE_VS_SEEDS: Final = 3.0
UPSCALE_VS_SEEDS: Final = 1.5
UPSCALE_CONCURRENCY: Final = 8
GATEWAY_OVERHEAD: Final = 0.15
SERVED_MODELS: Final = {"realesrgan_x4plus": "x4plus", "gfpgan_v1_4": "GFPGAN"}
RESTORER: Final = "gfpgan_v1_4"


def evaluate(results: RealisticResults) -> list[Target]:
    """The targets of the scenarios the run was asked for (unmeasured ones say so)."""
    scenarios = results.setup.scenarios
    targets: list[Target] = []
    if FLOORS in scenarios:
        for model in SERVED_MODELS:
            target = served_vs_ort(results, model)
            targets.append(with_why(target, explain_served, results, model))
    restore_cases = results.cases(RESTORE) or [(RESTORER, 0)]
    if RESTORE in scenarios:
        for model, side in restore_cases:
            target = restore_vs_seeds(results, model, side)
            targets.append(with_why(target, explain_restore, results, model, side))
    sweep = results.setup.sweep_model
    if UPSCALE in scenarios:
        for side in results.setup.sizes:
            target = upscale_vs_seeds(results, sweep, side)
            targets.append(with_why(target, explain_upscale, results, sweep, side))
        for side in results.setup.sizes:
            target = upscale_overhead(results, sweep, side)
            targets.append(with_why(target, explain_upscale_overhead, results, sweep, side))
    if RESTORE in scenarios:
        for model, side in restore_cases:
            target = restore_overhead(results, model, side)
            targets.append(with_why(target, explain_restore_overhead, results, model, side))
    return targets


def with_why(
    target: Target, explain: Callable[..., list[str]], results: RealisticResults, *case: object
) -> Target:
    if target.value is not None and not target.met:
        target.why = explain(results, *case)
    return target


def per_request_ms(run: CaseRun | None) -> float | None:
    if run is None or run.seconds_per_request is None:
        return None
    return 1000.0 * run.seconds_per_request


# --- served model vs in-process ORT --------------------------------------------------------


def served_vs_ort(results: RealisticResults, model: str) -> Target:
    served = [f for f in results.floors if f.model == model and f.runtime == TRITON_SERVED]
    best = max(served, key=lambda f: f.items_per_s, default=None)
    ort = results.floor(model, ORT_F32, 1)
    value = ratio(best.items_per_s if best else None, ort.items_per_s if ort else None)
    known = best or ort
    item = known.item if known is not None else "item"
    detail = f"best served {item}s/s through Triton ÷ in-process ORT FP32 {item}s/s at batch 1"
    if best is not None and ort is not None:
        detail += f": {fmt(best.items_per_s, 3)} (batch {best.batch}) ÷ {fmt(ort.items_per_s, 3)}"
        ort_best = max(
            (f for f in results.floors if f.model == model and f.runtime == ORT_F32),
            key=lambda f: f.items_per_s,
        )
        if ort_best.batch != 1:
            detail += (
                f"; against ORT's best batch ({ort_best.batch}): "
                f"{fmt(ratio(best.items_per_s, ort_best.items_per_s))}×"
            )
    name = f"served {SERVED_MODELS[model]} / in-process ORT FP32 ({item}s)"
    return Target(f"served_{model}", name, value, SERVED_VS_ORT, detail)


def explain_served(results: RealisticResults, model: str) -> list[str]:
    runs = sorted(
        (f for f in results.floors if f.model == model), key=lambda f: (f.batch, f.runtime)
    )
    if not runs:
        return ["nothing was measured"]
    backend = results.setup.served_runtime.get(model, "?")
    costs = "; ".join(f"{f.runtime} batch {f.batch}: {fmt_ms(f.ms_per_item)} ms" for f in runs)
    lines = [f"Milliseconds per {runs[0].item} (median call ÷ batch): {costs}."]
    for f in runs:
        if f.runtime == TRITON_SERVED and f.server_ms_per_item is not None:
            lines.append(
                f"Through Triton at batch {f.batch} ({backend} backend): the server computes "
                f"{fmt_ms(f.server_ms_per_item)} ms per item, the client sees "
                f"{fmt_ms(f.ms_per_item)} ms ({fmt_ms(f.ms_per_item - f.server_ms_per_item)} ms "
                "of gRPC, copies and (de)serialisation)."
            )
    ort1, ov1 = results.floor(model, ORT_F32, 1), results.floor(model, OV_F32, 1)
    same = ov1 if "openvino" in backend else ort1
    served1 = results.floor(model, TRITON_SERVED, 1)
    if same is not None and served1 is not None and served1.server_ms_per_item is not None:
        lines.append(
            f"Triton's own compute per item at batch 1 is "
            f"{fmt(ratio(served1.server_ms_per_item, same.ms_per_item))}× the time of the same "
            f"runtime ({same.runtime}) in this process: what serving costs inside the server."
        )
    if ort1 is not None and ov1 is not None:
        lines.append(
            f"OpenVINO FP32 in-process is {fmt(ratio(ort1.ms_per_item, ov1.ms_per_item))}× ORT "
            "FP32 per item at batch 1: the fastest FP32 kernel this CPU has bounds what any "
            "server of this model can reach on it."
        )
    batched = [f for f in runs if f.batch > 1 and f.runtime == ORT_F32]
    if ort1 is not None and batched:
        relative = ratio(batched[0].ms_per_item, ort1.ms_per_item)
        lines.append(
            f"A batch of {batched[0].batch} costs {fmt(relative)}× batch 1 per item on ORT: on "
            "CPU, batching adds no throughput once one call keeps every core busy."
        )
    lines.append(
        f"A {SERVED_VS_ORT:g}× lead over in-process FP32 needs a cheaper kernel than FP32 on "
        "these cores (BF16/AMX where the CPU has it, which the install picks by itself, or a "
        "GPU); a server can at best match the in-process floor on the same threads."
    )
    return lines


# --- restore: gateway vs seeds --------------------------------------------------------------


def restore_vs_seeds(results: RealisticResults, model: str, side: int) -> Target:
    gateway = results.run(RESTORE, model, side, GATEWAY, 1)
    seeds = results.run(RESTORE, model, side, SEEDS, 1)
    value = ratio(
        gateway.point.throughput if gateway else None, seeds.point.throughput if seeds else None
    )
    faces = gateway.notes.get("faces") if gateway else None
    detail = "photos/s through POST /restore ÷ the seeds' per-face PyTorch way, end to end, c=1"
    if gateway and seeds:
        detail += (
            f": {fmt(gateway.point.throughput, 4)} ÷ {fmt(seeds.point.throughput, 4)} "
            f"({fmt(faces, 0)} faces per photo)"
        )
    name = f"restore group photo ({fmt(faces, 0)} faces) vs seeds"
    return Target(f"restore_vs_seeds_{side}", name, value, RESTORE_VS_SEEDS, detail)


def explain_restore(results: RealisticResults, model: str, side: int) -> list[str]:
    gateway = results.run(RESTORE, model, side, GATEWAY, 1)
    seeds = results.run(RESTORE, model, side, SEEDS, 1)
    if gateway is None or seeds is None:
        return ["a path was not measured"]
    faces = gateway.notes.get("faces", 0.0)
    lines = [
        f"Per photo: gateway {fmt_ms(per_request_ms(gateway))} ms, seeds "
        f"{fmt_ms(per_request_ms(seeds))} ms."
    ]
    served = gateway.stage(model)
    detector = gateway.stage("face_detect_mtcnn")
    if served is not None:
        lines.append(
            f"Gateway: GFPGAN computes {fmt_ms(served.compute_per_inference_ms)} ms per face in "
            f"Triton (average batch {fmt(served.average_batch)}), {fmt(faces, 0)} faces; the "
            f"detector takes {fmt_ms(detector.request_ms if detector else None)} ms in Triton; "
            f"the restore pipeline {fmt_ms(gateway.notes.get('processing_ms'))} ms of the "
            f"{fmt_ms(gateway.point.latency.p50_ms)} ms a client waits."
        )
    face_ms = seeds.notes.get("face_ms")
    lines.append(
        f"Seeds: PyTorch GFPGAN {fmt_ms(face_ms)} ms per face (one at a time), MTCNN in-process "
        f"{fmt_ms(seeds.notes.get('detect_ms'))} ms, decode {fmt_ms(seeds.notes.get('decode_ms'))}"
        f" ms, encode {fmt_ms(seeds.notes.get('encode_ms'))} ms."
    )
    if served is not None and face_ms is not None:
        lines.append(
            f"The model call is most of both: per face the served GFPGAN is "
            f"{fmt(ratio(face_ms, served.compute_per_inference_ms))}× PyTorch, which bounds the "
            "end-to-end ratio; the rest (detection, alignment, paste-back, coding) is the same "
            "work on both sides."
        )
    return lines


# --- upscale: gateway vs seeds --------------------------------------------------------------


def comparison_level(results: RealisticResults, model: str, side: int, path: str) -> int | None:
    levels = [r.concurrency for r in results.case_runs(UPSCALE, model, side, path)]
    if UPSCALE_CONCURRENCY in levels:
        return UPSCALE_CONCURRENCY
    return max(levels) if levels else None


def upscale_vs_seeds(results: RealisticResults, model: str, side: int) -> Target:
    level = comparison_level(results, model, side, SEEDS)
    gateway = results.run(UPSCALE, model, side, GATEWAY, level) if level else None
    seeds = results.run(UPSCALE, model, side, SEEDS, level) if level else None
    value = ratio(
        gateway.point.throughput if gateway else None, seeds.point.throughput if seeds else None
    )
    detail = f"images/s through the gateway ÷ the seeds' whole-image PyTorch way at c={level}"
    if gateway and seeds:
        detail += f": {fmt(gateway.point.throughput, 3)} ÷ {fmt(seeds.point.throughput, 3)}"
    name = f"upscale {side}² gateway vs seeds (c={level})"
    return Target(f"upscale_vs_seeds_{side}", name, value, UPSCALE_VS_SEEDS, detail)


def explain_upscale(results: RealisticResults, model: str, side: int) -> list[str]:
    level = comparison_level(results, model, side, SEEDS)
    gateway = results.run(UPSCALE, model, side, GATEWAY, level) if level else None
    seeds = results.run(UPSCALE, model, side, SEEDS, level) if level else None
    cost = results.cost(UPSCALE, model, side)
    if gateway is None or seeds is None or cost is None:
        return ["a path was not measured"]
    tiling = cost.model_pixels / cost.image_pixels
    lines = [
        f"At c={level}: gateway {fmt_ms(per_request_ms(gateway))} ms per image, seeds "
        f"{fmt_ms(per_request_ms(seeds))} ms per image.",
        f"Tiling makes the served model compute {fmt(tiling)}× the image's pixels "
        f"({cost.model_inputs} windows of {results.setup.tile + 2 * results.setup.tile_pad}² for "
        f"a {side}² photo).",
    ]
    served = gateway.stage(model)
    seeds_one = results.run(UPSCALE, model, side, SEEDS, 1) or seeds
    model_ms = seeds_one.notes.get("model_ms")
    if served is not None and model_ms is not None:
        window = (results.setup.tile + 2 * results.setup.tile_pad) ** 2
        served_px = served.compute_per_inference_ms / window
        seeds_px = model_ms / cost.image_pixels
        kernel = ratio(seeds_px, served_px)
        lines.append(
            f"Per pixel the served model is {fmt(kernel)}× PyTorch's whole-image call "
            f"({fmt_ms(served.compute_per_inference_ms)} ms per window in Triton, average "
            f"batch {fmt(served.average_batch)}; PyTorch {fmt_ms(model_ms)} ms per image at "
            f"c={seeds_one.concurrency}), so with no overhead at all the gateway could reach "
            f"about {fmt(ratio(kernel, tiling))}× the seeds' images/s."
        )
    if gateway.point.own_cores and seeds.point.own_cores:
        lines.append(
            f"Cores busy: {fmt(median(gateway.point.own_cores), 1)} (gateway path) and "
            f"{fmt(median(seeds.point.own_cores), 1)} (seeds) of "
            f"{results.machine.get('cores', '?')}: both are compute bound, concurrency adds no "
            "cores."
        )
    lines += upscale_gateway_parts(results, gateway)
    return lines


def upscale_gateway_parts(results: RealisticResults, gateway: CaseRun) -> list[str]:
    """One gateway image's time split into its parts (medians per request)."""
    cost = results.cost(UPSCALE, gateway.model, gateway.side)
    notes = gateway.notes
    parts: list[str] = []
    if "queue_ms" in notes:
        parts.append(f"waiting in the job queue {fmt_ms(notes['queue_ms'])} ms")
    if "processing_ms" in notes:
        parts.append(f"the job itself {fmt_ms(notes['processing_ms'])} ms")
    if cost is not None:
        parts.append(
            f"of which decode {cost.decodes}× {fmt_ms(cost.decode_ms)} ms, tiling and stitching "
            f"{fmt_ms(cost.pipeline_ms)} ms, encode {fmt_ms(cost.encode_ms)} ms"
        )
    ensemble = gateway.stage(f"upscale_{gateway.model}")
    if ensemble is not None:
        calls = ensemble.requests / max(1, gateway.point.requests_per_repeat)
        parts.append(
            f"Triton {fmt_ms(ensemble.request_ms)} ms per call × {fmt(calls, 1)} calls "
            f"(queue {fmt_ms(ensemble.queue_ms)} ms per call)"
        )
    if "poll_slack_ms" in notes:
        parts.append(
            f"done but not yet seen by the client's next poll {fmt_ms(notes['poll_slack_ms'])} ms"
        )
    if "download_ms" in notes:
        parts.append(f"download {fmt_ms(notes['download_ms'])} ms")
    if not parts:
        return []
    return [f"Gateway per image (median, c={gateway.concurrency}): " + "; ".join(parts) + "."]


# --- gateway overhead over Triton direct ----------------------------------------------------


def overhead(gateway: CaseRun | None, direct: CaseRun | None, codec_ms: float) -> float | None:
    gateway_ms, direct_ms = per_request_ms(gateway), per_request_ms(direct)
    if gateway_ms is None or direct_ms is None or direct_ms <= 0:
        return None
    return (gateway_ms - codec_ms) / direct_ms - 1.0


def upscale_overhead(results: RealisticResults, model: str, side: int) -> Target:
    level = comparison_level(results, model, side, DIRECT)
    gateway = results.run(UPSCALE, model, side, GATEWAY, level) if level else None
    direct = results.run(UPSCALE, model, side, DIRECT, level) if level else None
    cost = results.cost(UPSCALE, model, side)
    codec = cost.codec_ms if cost else 0.0
    value = overhead(gateway, direct, codec)
    detail = f"(gateway ms per image − image coding) ÷ Triton direct ms per image − 1, at c={level}"
    if gateway and direct:
        detail += (
            f": ({fmt_ms(per_request_ms(gateway))} − {fmt_ms(codec)}) ÷ "
            f"{fmt_ms(per_request_ms(direct))}"
        )
    name = f"gateway overhead, upscale {side}² (c={level})"
    return Target(f"overhead_upscale_{side}", name, value, GATEWAY_OVERHEAD, detail, at_most=True)


def explain_upscale_overhead(results: RealisticResults, model: str, side: int) -> list[str]:
    level = comparison_level(results, model, side, DIRECT)
    gateway = results.run(UPSCALE, model, side, GATEWAY, level) if level else None
    direct = results.run(UPSCALE, model, side, DIRECT, level) if level else None
    if gateway is None or direct is None:
        return ["a path was not measured"]
    lines = upscale_gateway_parts(results, gateway)
    ensemble = f"upscale_{model}"
    for run in (gateway, direct):
        stage, inner = run.stage(ensemble), run.stage(model)
        if stage is not None and inner is not None:
            lines.append(
                f"{run.path}: Triton's model computes {fmt_ms(inner.compute_per_inference_ms)} ms"
                f" per window at average batch {fmt(inner.average_batch)}, the ensemble queues "
                f"{fmt_ms(stage.queue_ms)} ms per call."
            )
    job_ms = gateway.notes.get("processing_ms")
    if job_ms is not None:
        lines.append(
            f"A job costs the gateway {fmt_ms(job_ms)} ms against {fmt_ms(per_request_ms(direct))}"
            f" ms per image through Triton direct ({fmt(ratio(job_ms, per_request_ms(direct)))}×):"
            " the rest of the gap is time the server is not working on this client's images."
        )
    if gateway.point.own_cores and direct.point.own_cores:
        lines.append(
            f"Cores busy: {fmt(median(gateway.point.own_cores), 1)} on the gateway path, "
            f"{fmt(median(direct.point.own_cores), 1)} on Triton direct: where the first is "
            "lower the server sat idle, e.g. while a finished job waited for its client's next "
            "poll (clients.rest polls up to every 2 s) before the client sent its next photo."
        )
    settings = results.setup.gateway_settings
    lines.append(
        f"The gateway runs {settings.get('FACET_JOB_WORKERS', '1 (default)')} job(s) at once; "
        f"Triton direct ran {level} pipelines at once, so the server saw more tiles together."
    )
    return lines


def restore_overhead(results: RealisticResults, model: str, side: int) -> Target:
    gateway = results.run(RESTORE, model, side, GATEWAY, 1)
    direct = results.run(RESTORE, model, side, DIRECT, 1)
    cost = results.cost(RESTORE, model, side)
    codec = cost.codec_ms if cost else 0.0
    value = overhead(gateway, direct, codec)
    detail = "(gateway ms per photo − image coding) ÷ Triton direct ms per photo − 1, at c=1"
    if gateway and direct:
        detail += (
            f": ({fmt_ms(per_request_ms(gateway))} − {fmt_ms(codec)}) ÷ "
            f"{fmt_ms(per_request_ms(direct))}"
        )
    name = "gateway overhead, restore (c=1)"
    return Target(f"overhead_restore_{side}", name, value, GATEWAY_OVERHEAD, detail, at_most=True)


def explain_restore_overhead(results: RealisticResults, model: str, side: int) -> list[str]:
    gateway = results.run(RESTORE, model, side, GATEWAY, 1)
    direct = results.run(RESTORE, model, side, DIRECT, 1)
    if gateway is None or direct is None:
        return ["a path was not measured"]
    return [
        f"Gateway: restore pipeline {fmt_ms(gateway.notes.get('processing_ms'))} ms inside a "
        f"{fmt_ms(gateway.point.latency.p50_ms)} ms request (download "
        f"{fmt_ms(gateway.notes.get('download_ms'))} ms); Triton direct pipeline "
        f"{fmt_ms(direct.notes.get('pipeline_ms'))} ms (detection "
        f"{fmt_ms(direct.notes.get('detect_ms'))} ms, faces {fmt_ms(direct.notes.get('faces_ms'))}"
        " ms)."
    ]
