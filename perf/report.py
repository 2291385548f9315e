"""Turn benchmark Results into ratios against their targets, a markdown report and PNG plots."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from perf.results import (
    GATEWAY,
    IMAGE_PATHS,
    LABELS,
    ORT,
    PATHS,
    PYTORCH,
    TILE_PATHS,
    TRITON,
    TRITON_NO_BATCHING,
    Point,
    Results,
)
from perf.stats import median, ratio, shortfall

TRITON_VS_ORT_TARGET: Final = 0.9
GATEWAY_VS_TRITON_TARGET: Final = 0.85
GATEWAY_VS_PYTORCH_TARGET: Final = 2.0
GATEWAY_VS_PYTORCH_CONCURRENCY: Final = 8
PREPOST_MODELS: Final = ("image_to_tensor", "tensor_to_image")


@dataclass
class Target:
    """One ratio the benchmark exists to check."""

    key: str
    name: str
    value: float | None
    target: float
    detail: str  # how the value was formed
    why: list[str] = field(default_factory=list)  # where the time goes, filled when missed
    fastest: float | None = None  # the same ratio from each point's fastest repeat
    at_most: bool = False  # a ceiling (an overhead) rather than a floor

    @property
    def comparator(self) -> str:
        return "≤" if self.at_most else "≥"

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.target if self.at_most else self.value >= self.target

    @property
    def status(self) -> str:
        if self.value is None:
            return "not measured"
        if self.met:
            return "met"
        if self.at_most:
            return f"missed: {self.value:.0%} > {self.target:.0%}"
        return f"missed by {shortfall(self.value, self.target):.0%}"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def fmt_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


# --- the three targets ----------------------------------------------------------------------


def fastest_view(results: Results) -> Results:
    """The same results with each point reduced to its fastest repeat: on a machine shared with
    other work, the least disturbed estimate of what the code can do."""
    view = copy.deepcopy(results)
    for point in view.points:
        point.throughputs = [max(point.throughputs)] if point.throughputs else []
    return view


def evaluate(results: Results) -> list[Target]:
    """The three target ratios from the medians over repeats (what the targets are judged on),
    each with the same ratio from the fastest repeats next to it."""
    fastest = fastest_view(results)
    targets = []
    for compute in (triton_vs_ort, gateway_vs_triton, gateway_vs_pytorch):
        target = compute(results)
        target.fastest = compute(fastest).value
        if not target.met and target.value is not None:
            target.why = EXPLAIN[target.key](results)
        targets.append(target)
    return targets


def triton_vs_ort(results: Results) -> Target:
    triton, ort = results.best(TRITON), results.best(ORT)
    value = ratio(triton.throughput if triton else None, ort.throughput if ort else None)
    detail = "best Triton (dynamic batching) tiles/s ÷ best in-process ORT tiles/s"
    if triton and ort:
        detail += (
            f": {fmt(triton.throughput)} (c={triton.concurrency}) ÷ "
            f"{fmt(ort.throughput)} (c={ort.concurrency})"
        )
    return Target("triton_vs_ort", "Triton / ONNX Runtime", value, TRITON_VS_ORT_TARGET, detail)


def best_gateway_excluding_codec(results: Results) -> tuple[Point | None, float | None]:
    best: tuple[Point | None, float | None] = (None, None)
    for point in results.path_points(GATEWAY):
        tiles = results.gateway_tiles_per_s(point, exclude_codec=True)
        if tiles is not None and (best[1] is None or tiles > best[1]):
            best = (point, tiles)
    return best


def gateway_vs_triton(results: Results) -> Target:
    point, tiles = best_gateway_excluding_codec(results)
    triton = results.best(TRITON)
    value = ratio(tiles, triton.throughput if triton else None)
    detail = "best gateway model tiles/s with image coding taken out ÷ best Triton direct tiles/s"
    if point is not None and triton is not None:
        detail += (
            f": {fmt(tiles)} (c={point.concurrency}, {results.setup.tiles_per_image} tiles per "
            f"image) ÷ {fmt(triton.throughput)} (c={triton.concurrency})"
        )
    return Target(
        "gateway_vs_triton",
        "gateway / Triton (codec excluded)",
        value,
        GATEWAY_VS_TRITON_TARGET,
        detail,
    )


def comparison_concurrency(results: Results) -> int | None:
    levels = results.setup.concurrency
    if GATEWAY_VS_PYTORCH_CONCURRENCY in levels:
        return GATEWAY_VS_PYTORCH_CONCURRENCY
    return max(levels) if levels else None


def gateway_vs_pytorch(results: Results) -> Target:
    level = comparison_concurrency(results)
    gateway = results.point(GATEWAY, level) if level is not None else None
    torch = results.point(PYTORCH, level) if level is not None else None
    value = ratio(gateway.throughput if gateway else None, torch.throughput if torch else None)
    detail = f"gateway images/s ÷ PyTorch images/s at concurrency {level}, both end to end"
    if gateway and torch:
        detail += f": {fmt(gateway.throughput, 3)} ÷ {fmt(torch.throughput, 3)}"
    return Target(
        "gateway_vs_pytorch",
        f"gateway vs PyTorch (c={level})",
        value,
        GATEWAY_VS_PYTORCH_TARGET,
        detail,
    )


# --- where the time goes, for a missed target ----------------------------------------------


def explain_triton_vs_ort(results: Results) -> list[str]:
    lines = []
    ort, triton = results.best(ORT), results.best(TRITON)
    if ort is None or triton is None:
        return ["a path was not measured"]
    ort_ms = 1000.0 / ort.throughput
    triton_ms = 1000.0 / triton.throughput
    lines.append(
        f"Per tile, Triton spends {fmt_ms(triton_ms)} ms of wall time against "
        f"{fmt_ms(ort_ms)} ms in-process: {fmt_ms(triton_ms - ort_ms)} ms more."
    )
    stage = results.stage(results.setup.model, TRITON, triton.concurrency)
    if stage is not None:
        lines.append(
            f"Inside Triton at c={triton.concurrency}: average batch {fmt(stage.average_batch)}, "
            f"compute {fmt_ms(stage.compute_per_inference_ms)} ms per tile (ORT in-process: "
            f"{fmt_ms(ort_ms)} ms), queue {fmt_ms(stage.queue_ms)} ms per request, whole "
            f"request {fmt_ms(stage.request_ms)} ms in the server vs "
            f"{fmt_ms(triton.latency.mean_ms)} ms seen by the client "
            f"({fmt_ms(triton.latency.mean_ms - stage.request_ms)} ms of "
            "gRPC, (de)serialisation and client time)."
        )
        batch_cost = {cost.batch: cost.ms_per_tile for cost in results.batch_costs}
        if 1 in batch_cost and len(batch_cost) > 1:
            costs = ", ".join(f"batch {b}: {fmt_ms(ms)} ms" for b, ms in sorted(batch_cost.items()))
            lines.append(
                f"ONNX Runtime's own cost per tile by batch size on this CPU: {costs}. "
                "Where a larger batch costs more per tile, dynamic batching cannot win here; "
                "it can only add the queue delay."
            )
    no_batching = results.best(TRITON_NO_BATCHING)
    if no_batching is not None:
        lines.append(
            f"Without dynamic batching Triton reaches {fmt(no_batching.throughput)} tiles/s "
            f"(c={no_batching.concurrency}), "
            f"{fmt(ratio(no_batching.throughput, ort.throughput))}× the in-process floor."
        )
    return lines


def explain_gateway_vs_triton(results: Results) -> list[str]:
    point, tiles = best_gateway_excluding_codec(results)
    if point is None or tiles is None:
        return ["the gateway was not measured"]
    setup = results.setup
    per_image_ms = 1000.0 / point.throughput
    lines = [
        f"At c={point.concurrency} one image ({setup.tiles_per_image} tiles of "
        f"{setup.tile}×{setup.tile}) takes {fmt_ms(per_image_ms)} ms of wall time per image."
    ]
    parts: list[tuple[str, float]] = []
    if results.codec is not None:
        parts.append(("image coding (excluded from the ratio)", results.codec.per_image_ms))
    model_stage = results.stage(setup.model, GATEWAY, point.concurrency)
    if model_stage is not None:
        parts.append(
            (
                f"model compute ({fmt_ms(model_stage.compute_per_inference_ms)} ms per tile, "
                f"average batch {fmt(model_stage.average_batch)})",
                model_stage.compute_per_inference_ms * setup.tiles_per_image,
            )
        )
    for name in PREPOST_MODELS:
        stage = results.stage(name, GATEWAY, point.concurrency)
        if stage is not None:
            parts.append((f"{name} graph", stage.compute_per_inference_ms * setup.tiles_per_image))
    accounted = sum(ms for _, ms in parts)
    parts.append(
        (
            "the rest: HTTP, job queue (idle poll), tiling and stitching, status polling",
            per_image_ms - accounted,
        )
    )
    lines += [f"- {name}: {fmt_ms(ms)} ms" for name, ms in parts]
    triton = results.best(TRITON)
    direct = results.stage(setup.model, TRITON, triton.concurrency) if triton else None
    if direct is not None and model_stage is not None:
        lines.append(
            f"Triton direct computes a tile in {fmt_ms(direct.compute_per_inference_ms)} ms "
            f"(average batch {fmt(direct.average_batch)}); through the gateway, which sends "
            "as many tiles per request as the ensemble's max_batch_size allows, a tile "
            f"costs {fmt_ms(model_stage.compute_per_inference_ms)} ms."
        )
    return lines


def fastest_ms(point: Point | None) -> float | None:
    """Per-request time of a concurrency-1 point in its fastest repeat."""
    if point is None or not point.throughputs or point.concurrency != 1:
        return None
    return ratio(1000.0, max(point.throughputs))


def ort_ms_per_tile(results: Results) -> float | None:
    """In-process ORT cost of one tile at batch 1: the least of the batch-cost probe and the
    fastest concurrency-1 repeat (the least disturbed estimates)."""
    found = [cost.ms_per_tile for cost in results.batch_costs if cost.batch == 1]
    fastest = fastest_ms(results.point(ORT, 1))
    found += [fastest] if fastest is not None else []
    return min(found) if found else None


def explain_gateway_vs_pytorch(results: Results) -> list[str]:
    level = comparison_concurrency(results)
    if level is None:
        return ["nothing was measured"]
    gateway, torch = results.point(GATEWAY, level), results.point(PYTORCH, level)
    if gateway is None or torch is None:
        return ["a path was not measured"]
    setup = results.setup
    work = setup.tiles_per_image * setup.tile**2 / setup.image_side**2
    lines = [
        f"At c={level}: gateway {fmt_ms(1000.0 / gateway.throughput)} ms per image, PyTorch "
        f"{fmt_ms(1000.0 / torch.throughput)} ms per image (p50 latency "
        f"{fmt_ms(gateway.latency.p50_ms)} vs {fmt_ms(torch.latency.p50_ms)} ms).",
        f"Tiling makes the gateway's model do {fmt(work)}× the pixels of the whole-image PyTorch "
        f"call ({setup.tiles_per_image} windows of {setup.tile}² with their overlap and padding "
        f"for a {setup.image_side}² image).",
    ]
    if gateway.own_cores and torch.own_cores:
        lines.append(
            f"Both are compute bound: our processes kept {fmt(median(gateway.own_cores), 1)} "
            f"(gateway) and {fmt(median(torch.own_cores), 1)} (PyTorch) cores busy out of "
            f"{results.machine.get('cores', '?')}; more concurrency cannot add cores."
        )
    torch_ms = fastest_ms(results.point(PYTORCH, 1))
    ort_tile_ms = ort_ms_per_tile(results)
    if torch_ms is not None and ort_tile_ms is not None and results.codec is not None:
        codec_ms = results.codec.decode_ms + results.codec.encode_ms
        torch_px_ms = (torch_ms - codec_ms) / setup.image_side**2
        ort_px_ms = ort_tile_ms / setup.tile**2
        kernel = ratio(torch_px_ms, ort_px_ms)
        ceiling = ratio(kernel, work)
        lines.append(
            f"Per pixel, ONNX Runtime is {fmt(kernel)}× as fast as PyTorch here "
            f"({fmt_ms(ort_tile_ms)} ms per {setup.tile}² tile vs "
            f"{fmt_ms(torch_px_ms * setup.tile**2)} ms for as many pixels in PyTorch; fastest "
            "runs at c=1)."
        )
        batch_cost = {cost.batch: cost.ms_per_tile for cost in results.batch_costs}
        no_batch_gain = ""
        largest = max(batch_cost, default=1)
        if 1 in batch_cost and largest > 1 and batch_cost[largest] >= 0.9 * batch_cost[1]:
            costs = ", ".join(f"batch {b}: {fmt_ms(ms)} ms" for b, ms in sorted(batch_cost.items()))
            no_batch_gain = f" Batching does not cut the cost of a tile here ({costs} per tile)."
        lines.append(
            f"So even with no gateway overhead at all the gateway could serve at most about "
            f"{fmt(ceiling)}× PyTorch's images per second on this machine (kernel speed "
            f"{fmt(kernel)}× ÷ tiling {fmt(work)}×).{no_batch_gain} The 2× target needs what a "
            "CPU box does not give: batches that are cheaper per tile (a GPU), or larger tiles, "
            "whose overlap is a smaller share of the work."
        )
    return lines


EXPLAIN: Final[dict[str, Callable[[Results], list[str]]]] = {
    "triton_vs_ort": explain_triton_vs_ort,
    "gateway_vs_triton": explain_gateway_vs_triton,
    "gateway_vs_pytorch": explain_gateway_vs_pytorch,
}


# --- markdown --------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(results: Results, targets: Sequence[Target], plots: Sequence[Path]) -> str:
    setup, machine = results.setup, results.machine
    title_kind = "quick check (tiny synthetic models)" if setup.quick else setup.model
    lines = [
        f"# Facet benchmark: {title_kind}, {results.started_at[:10]}",
        "",
        "Generated by `python -m perf.benchmark`. Every path runs the same model on the same "
        "real-photo input with the same thread budget, driven by the same closed-loop client "
        "(each client thread sends a request and waits for its answer).",
        "",
        "## Ratios",
        "",
    ]
    lines += table(
        ["ratio", "value (medians)", "target", "status", "from fastest repeats", "how"],
        [
            [
                t.name,
                fmt(t.value),
                f"{t.comparator} {fmt(t.target)}",
                t.status,
                fmt(t.fastest),
                t.detail,
            ]
            for t in targets
        ],
    )
    lines += [
        "",
        "Values use the median of the repeats, as the targets are defined. The fastest-repeat "
        "column is the same ratio from each point's least disturbed run; where the two differ, "
        "other work on the machine (the `cores` column below) moved the medians.",
    ]
    for target in targets:
        if target.why:
            lines += ["", f"**{target.name}: {target.status}; where the time goes**", ""]
            lines += [line if line.startswith("- ") else f"- {line}" for line in target.why]
    lines += ["", "## Machine", ""]
    lines += render_machine(machine)
    lines += ["", "## Setup", ""]
    lines += render_setup(results)
    lines += ["", "## Throughput and latency", ""]
    lines += render_points(results)
    lines += ["", "## Where the time goes inside Triton", ""]
    lines += render_stages(results)
    if results.codec is not None or results.batch_costs:
        lines += ["", "## Image coding and batch cost", ""]
        lines += render_codec_and_batches(results)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
    if results.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in results.notes]
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "make models   # real x4plus weights into model_repository/",
        "python -m perf.benchmark --repository model_repository   # see --help for the knobs",
        "```",
        "",
    ]
    return "\n".join(lines)


def render_machine(machine: dict[str, Any]) -> list[str]:
    """The machine table (perf.machine's description of the host)."""
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    return table(
        ["", ""],
        [
            ["host", str(machine.get("hostname"))],
            ["CPU", f"{machine.get('cpu_model')}, {machine.get('cores')} cores"],
            ["RAM", f"{machine.get('ram_gib')} GiB"],
            ["GPU", str(machine.get("gpu"))],
            ["OS", str(machine.get("os"))],
            ["Python", str(machine.get("python"))],
            ["load average at start", str(machine.get("load_average"))],
            ["packages", packages],
        ],
    )


def render_setup(results: Results) -> list[str]:
    s = results.setup
    tile_requests = ", ".join(f"c={c}: {n}" for c, n in sorted(s.tile_requests.items()))
    image_requests = ", ".join(f"c={c}: {n}" for c, n in sorted(s.image_requests.items()))
    gateway = ", ".join(f"{k}={v}" for k, v in sorted(s.gateway_settings.items()))
    return [
        f"- model: `{s.model}` ({s.variant}, weights: {s.weights}), repository `{s.repository}`",
        f"- tiles: {s.tile}×{s.tile} crops of the astronaut photo, one tile per request "
        "(ORT and Triton paths)",
        f"- images: the whole photo resized to {s.image_side}×{s.image_side}, uploaded as "
        f"{results.codec.upload_format if results.codec else '?'}; the gateway cuts it into "
        f"{s.tiles_per_image} windows of {s.tile}×{s.tile}",
        f"- threads: ONNX Runtime intra-op {s.intra_op_threads}, inter-op {s.inter_op_threads} "
        f"(the Triton config's), torch.set_num_threads({s.intra_op_threads})",
        f"- Triton batching (committed config): {s.triton_batching}",
        f"- gateway: {gateway}",
        f"- concurrency {s.concurrency}, {s.repeats} repeat(s), medians over repeats; requests "
        f"per repeat: tiles {tile_requests}; images {image_requests}",
        f"- total time {results.duration_s:.0f} s",
    ]


def render_points(results: Results) -> list[str]:
    rows = []
    for path in PATHS:
        for point in results.path_points(path):
            spread = ""
            if len(point.throughputs) > 1:
                spread = f"{fmt(min(point.throughputs))}–{fmt(max(point.throughputs))}"
            extra = ""
            if path == GATEWAY:
                extra = (
                    f"{fmt(results.gateway_tiles_per_s(point, exclude_codec=False))} / "
                    f"{fmt(results.gateway_tiles_per_s(point, exclude_codec=True))}"
                )
            cores = ""
            if point.own_cores and point.other_cores:
                cores = f"{fmt(median(point.own_cores), 1)} / {fmt(median(point.other_cores), 1)}"
            rows.append(
                [
                    LABELS[path],
                    str(point.concurrency),
                    f"{fmt(point.throughput, 3)} {point.unit}",
                    spread,
                    fmt_ms(point.latency.p50_ms),
                    fmt_ms(point.latency.p95_ms),
                    fmt_ms(point.latency.p99_ms),
                    cores,
                    extra,
                ]
            )
    return table(
        [
            "path",
            "c",
            "throughput (median)",
            "range over repeats",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "cores: ours / others",
            "gateway model tiles/s (with / without coding)",
        ],
        rows,
    )


def render_stages(results: Results) -> list[str]:
    rows = [
        [
            LABELS[s.path],
            str(s.concurrency),
            s.model,
            str(s.requests),
            fmt(s.average_batch),
            fmt_ms(s.queue_ms),
            fmt_ms(s.compute_input_ms),
            fmt_ms(s.compute_infer_ms),
            fmt_ms(s.compute_output_ms),
            fmt_ms(s.compute_per_inference_ms),
        ]
        for s in sorted(results.stages, key=lambda s: (PATHS.index(s.path), s.concurrency, s.model))
    ]
    lines = [
        "Per-request averages from Triton's statistics (ms), summed over the repeats. Every "
        "request of a batch is charged the whole batch's compute; the last column divides the "
        "batches' compute by the tiles in them.",
        "",
    ]
    return lines + table(
        [
            "path",
            "c",
            "model",
            "requests",
            "avg batch",
            "queue",
            "compute input",
            "compute infer",
            "compute output",
            "compute per tile",
        ],
        rows,
    )


def render_codec_and_batches(results: Results) -> list[str]:
    lines: list[str] = []
    codec = results.codec
    if codec is not None:
        lines.append(
            f"Gateway image coding, timed in-process with `gateway.imageio` (median): decode "
            f"{fmt_ms(codec.decode_ms)} ms ({codec.upload_format}, {codec.upload_bytes:,} bytes), "
            f"encode {fmt_ms(codec.encode_ms)} ms ({codec.result_format} of the 4× result); per "
            f"image {codec.decodes_per_image}× decode + encode = {fmt_ms(codec.per_image_ms)} ms."
        )
    if results.batch_costs:
        costs = ", ".join(
            f"batch {c.batch}: {fmt_ms(c.ms_per_tile)} ms" for c in results.batch_costs
        )
        lines += [
            "",
            f"In-process ONNX Runtime cost per tile by batch size (fastest of the runs): {costs}.",
        ]
    return lines


# --- plots -----------------------------------------------------------------------------------


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, destination: Path) -> Path:
    """Lay out, write as a PNG and free one matplotlib figure."""
    figure.tight_layout()
    figure.savefig(destination, dpi=110)
    pyplot().close(figure)
    return destination


def render_closing_sections(
    skipped: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, Any]],
    plots: Sequence[Path],
    notes: Sequence[str],
) -> list[str]:
    """A report's skipped/failed steps, plots and notes sections (each only when present)."""
    lines: list[str] = []
    if skipped or failed:
        lines += ["", "## Skipped and failed steps", ""]
        lines += [f"- skipped: {s['step']} ({s['reason']})" for s in skipped]
        lines += [f"- FAILED: {s['step']}: {s['reason']}" for s in failed]
    if plots:
        lines += ["", "## Plots", "", *(f"![{p.stem}]({p.name})" for p in plots)]
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return lines


def _plot_paths(axis: Any, results: Results, paths: Sequence[str]) -> None:
    for path in paths:
        points = results.path_points(path)
        if points:
            axis.plot(
                [p.concurrency for p in points],
                [p.throughput for p in points],
                marker="o",
                label=LABELS[path],
            )


def _finish_axis(axis: Any, levels: Sequence[int]) -> None:
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(levels), [str(c) for c in levels])
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)


def plot_throughput(results: Results, destination: Path) -> Path:
    """Tiles/s of the tile paths (and the gateway's tile equivalent), images/s of the rest."""
    plt = pyplot()
    figure, (tiles_axis, images_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    _plot_paths(tiles_axis, results, TILE_PATHS)
    gateway = results.path_points(GATEWAY)
    for exclude, style in ((False, ":"), (True, "--")):
        values = [results.gateway_tiles_per_s(p, exclude_codec=exclude) for p in gateway]
        if gateway and all(v is not None for v in values):
            label = "gateway, coding excluded" if exclude else "gateway, end to end"
            tiles_axis.plot(
                [p.concurrency for p in gateway], values, style, marker="s", label=label
            )
    tiles_axis.set(xlabel="concurrency", ylabel="model tiles / s", title="Tiles per second")
    _plot_paths(images_axis, results, IMAGE_PATHS)
    images_axis.set(xlabel="concurrency", ylabel="images / s", title="Whole images per second")
    for axis in (tiles_axis, images_axis):
        _finish_axis(axis, results.setup.concurrency)
    figure.suptitle(f"{results.setup.model} ({results.setup.variant}), {results.started_at[:10]}")
    return save_figure(figure, destination)


def plot_latency(results: Results, destination: Path) -> Path:
    """p50/p95/p99 latency against concurrency, one panel per path."""
    plt = pyplot()
    present = [path for path in PATHS if results.path_points(path)]
    columns = min(3, max(1, len(present)))
    rows = max(1, math.ceil(len(present) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    panels = [axis for row in axes for axis in row]
    for axis in panels[len(present) :]:
        axis.set_visible(False)
    for axis, path in zip(panels, present, strict=False):
        points = results.path_points(path)
        levels = [p.concurrency for p in points]
        for name, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")):
            axis.plot(levels, [getattr(p.latency, key) for p in points], marker="o", label=name)
        axis.set(xlabel="concurrency", ylabel="latency (ms)", title=LABELS[path])
        axis.title.set_fontsize(8)
        _finish_axis(axis, levels)
    return save_figure(figure, destination)


def write_plots(results: Results, directory: Path, stem: str) -> list[Path]:
    """Throughput vs concurrency and latency percentiles vs concurrency, as PNGs."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        plot_throughput(results, directory / f"{stem}-throughput.png"),
        plot_latency(results, directory / f"{stem}-latency.png"),
    ]


def write_report(results: Results, directory: Path, stem: str) -> tuple[Path, list[Target]]:
    """Write <stem>.md and its PNGs into `directory`; return the markdown path and targets."""
    targets = evaluate(results)
    plots = write_plots(results, directory, stem)
    markdown = directory / f"{stem}.md"
    markdown.write_text(render_markdown(results, targets, plots))
    return markdown, targets
