"""PNG plots of a user-level run: upscale throughput and latency against concurrency (one panel
per photo size), the floors per model input, and the processes' RSS over the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perf.realistic_results import (
    CASE_PATHS,
    PATH_LABELS,
    RUNTIME_LABELS,
    RUNTIMES,
    UPSCALE,
    RealisticResults,
)
from perf.report import pyplot, save_figure


def plot_upscale(results: RealisticResults, destination: Path, *, latency: bool) -> Path | None:
    model = results.setup.sweep_model
    sides = [side for m, side in results.cases(UPSCALE) if m == model]
    if not sides:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(sides), figsize=(5.5 * len(sides), 4.2), squeeze=False)
    for axis, side in zip(axes[0], sides, strict=True):
        for path in CASE_PATHS:
            runs = results.case_runs(UPSCALE, model, side, path)
            if not runs:
                continue
            values = [r.point.latency.p50_ms if latency else r.point.throughput for r in runs]
            axis.plot([r.concurrency for r in runs], values, marker="o", label=PATH_LABELS[path])
        axis.set(
            xlabel="concurrency",
            ylabel="p50 latency (ms)" if latency else "images / s",
            title=f"{model}, {side}² JPEG, ×4",
        )
        axis.set_xscale("log", base=2)
        axis.set_xticks(results.setup.levels, [str(c) for c in results.setup.levels])
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return save_figure(figure, destination)


def plot_floors(results: RealisticResults, destination: Path) -> Path | None:
    models = results.floor_models()
    if not models:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        batches = sorted({f.batch for f in results.floors if f.model == model})
        width = 0.8 / len(RUNTIMES)
        for index, runtime in enumerate(RUNTIMES):
            found = [results.floor(model, runtime, batch) for batch in batches]
            heights = [f.ms_per_item if f else 0.0 for f in found]
            positions = [b + (index - (len(RUNTIMES) - 1) / 2) * width for b in range(len(batches))]
            axis.bar(positions, heights, width, label=RUNTIME_LABELS[runtime])
        item = next(f.item for f in results.floors if f.model == model)
        axis.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        axis.set(ylabel=f"ms per {item}", title=model)
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=7)
    return save_figure(figure, destination)


def plot_memory(results: RealisticResults, destination: Path) -> Path | None:
    if not results.timeline:
        return None
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4))
    series: dict[str, tuple[list[float], list[float]]] = {}
    for seconds, process, rss in results.timeline:
        times, values = series.setdefault(str(process), ([], []))
        times.append(float(seconds))
        values.append(float(rss))
    for process, (times, values) in series.items():
        axis.plot(times, values, label=process)
    axis.set(xlabel="seconds into the run", ylabel="RSS (MiB, process tree summed)")
    axis.set_title("Memory during the run")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, destination)


def write_plots(results: RealisticResults, directory: Path, stem: str) -> list[Path]:
    made: list[Any] = [
        plot_upscale(results, directory / f"{stem}-upscale-throughput.png", latency=False),
        plot_upscale(results, directory / f"{stem}-upscale-latency.png", latency=True),
        plot_floors(results, directory / f"{stem}-floors.png"),
        plot_memory(results, directory / f"{stem}-memory.png"),
    ]
    return [path for path in made if path is not None]
