"""What one face-swap video benchmark run measured, as plain dataclasses kept as JSON (so a
report can be rendered again from perf/reports/raw/ without re-running)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from perf.stats import median, ratio

KIND: Final = "swap_video"
FACET: Final = "facet"
BASELINE: Final = "baseline"
PATH_LABELS: Final = {
    FACET: "Facet: POST /process/video (windows of frames batched, stages overlapped)",
    BASELINE: "FaceFusion's way over the same Triton (per frame, per face, sequential)",
}
# The stages every path reports, in pipeline order (seconds summed over the clip).
STAGES: Final = ("decode", "detect", "align", "latent", "swap", "paste", "encode")


@dataclass
class ModelDelta:
    """Triton's counters of one model over one run."""

    model: str
    requests: int
    inferences: int
    executions: int
    queue_s: float
    request_compute_s: float  # compute input + infer + output, per request, summed
    execution_compute_s: float  # the same per execution (a batch counted once), summed
    by_batch: dict[int, list[float]] = field(default_factory=dict)  # size → [executions, s]

    @property
    def average_batch(self) -> float | None:
        return self.inferences / self.executions if self.executions else None


@dataclass
class PathRun:
    """One path over the whole clip."""

    path: str  # FACET or BASELINE
    frames: int
    faces_detected: int
    faces_swapped: int
    wall_s: float  # submit → result (Facet), open → file closed (baseline)
    stages_s: dict[str, float]  # stage → seconds; Facet's are busy times that overlap
    stage_sources: dict[str, str]  # stage → where its number comes from
    per_frame_ms: dict[str, float] = field(default_factory=dict)  # medians over frames
    per_face_ms: dict[str, float] = field(default_factory=dict)  # medians over faces
    triton: list[ModelDelta] = field(default_factory=list)
    own_cores: float = 0.0
    other_cores: float = 0.0
    load_before: str = ""
    load_after: str = ""
    output: dict[str, Any] = field(default_factory=dict)  # frames, audio, size of the result
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the job's outcome
    round: int = 1  # rounds alternate the paths' order (F B, B F, …) on a shared machine

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def model(self, name: str) -> ModelDelta | None:
        return next((m for m in self.triton if m.model == name), None)


def combine(runs: list[PathRun]) -> PathRun:
    """Rounds of one path as one: counts, seconds and Triton's counters summed, CPU use
    weighted by wall time, the first round's medians and output."""
    if len(runs) == 1:
        return runs[0]
    first, wall = runs[0], sum(r.wall_s for r in runs)

    def total(key: Callable[[PathRun], dict[str, float]]) -> dict[str, float]:
        summed: dict[str, float] = {}
        for run in runs:
            for name, value in key(run).items():
                summed[name] = summed.get(name, 0.0) + value
        return summed

    models: dict[str, ModelDelta] = {}
    for run in runs:
        for delta in run.triton:
            models[delta.model] = (
                add_deltas(models[delta.model], delta) if (delta.model in models) else delta
            )
    return PathRun(
        path=first.path,
        frames=sum(r.frames for r in runs),
        faces_detected=sum(r.faces_detected for r in runs),
        faces_swapped=sum(r.faces_swapped for r in runs),
        wall_s=wall,
        stages_s=total(lambda r: r.stages_s),
        stage_sources=dict(first.stage_sources),
        per_frame_ms=dict(first.per_frame_ms),
        per_face_ms=dict(first.per_face_ms),
        triton=list(models.values()),
        own_cores=sum(r.own_cores * r.wall_s for r in runs) / wall if wall else 0.0,
        other_cores=sum(r.other_cores * r.wall_s for r in runs) / wall if wall else 0.0,
        load_before=first.load_before,
        load_after=runs[-1].load_after,
        output=dict(first.output),
        extra={**first.extra, "rounds": len(runs)},
        round=0,
    )


def add_deltas(a: ModelDelta, b: ModelDelta) -> ModelDelta:
    by_batch = {size: list(v) for size, v in a.by_batch.items()}
    for size, (count, seconds) in b.by_batch.items():
        was = by_batch.get(size, [0.0, 0.0])
        by_batch[size] = [was[0] + count, was[1] + seconds]
    return ModelDelta(
        model=a.model,
        requests=a.requests + b.requests,
        inferences=a.inferences + b.inferences,
        executions=a.executions + b.executions,
        queue_s=a.queue_s + b.queue_s,
        request_compute_s=a.request_compute_s + b.request_compute_s,
        execution_compute_s=a.execution_compute_s + b.execution_compute_s,
        by_batch=dict(sorted(by_batch.items())),
    )


@dataclass
class BatchCost:
    """One swapper call of `batch` faces, timed by the client, with Triton's compute."""

    batch: int
    calls_ms: list[float]
    server_ms: list[float] = field(default_factory=list)  # per execution

    @property
    def median_ms(self) -> float:
        return median(self.calls_ms)

    @property
    def ms_per_face(self) -> float:
        return self.median_ms / self.batch

    @property
    def server_ms_per_face(self) -> float | None:
        return median(self.server_ms) / self.batch if self.server_ms else None


@dataclass
class MemoryRun:
    """The gateway's and Triton's RSS sampled while one clip went through the gateway."""

    tiny: bool
    seconds: float
    fps: int
    frames: int
    faces: int
    wall_s: float
    interval_s: float
    samples: dict[str, list[list[float]]]  # process → [[s since submit, RSS MiB], …]
    peak_mb: dict[str, float]
    start_mb: dict[str, float]  # the first sample, before the upload
    settled_mb: dict[str, float]  # the first sample after a tenth of the job's time
    end_mb: dict[str, float]  # the last, after the job ended
    slope_mb_per_min: dict[str, float | None]
    later_slope_mb_per_min: dict[str, float | None]
    threshold_mb: dict[str, float]  # growth within this counts as flat
    reason: str  # why these models and this frame rate
    from_run: str = ""  # set when a report shows the memory clip of another run (its start)

    def growth_mb(self, process: str) -> float:
        return self.end_mb[process] - self.settled_mb[process]

    def drift_mb(self, process: str) -> float:
        """How much the fitted line of the later half rises across it (0 when it falls)."""
        from perf.swap_video_plan import later_half

        later = later_half([(t, v) for t, v in self.samples.get(process, [])])
        span_s = later[-1][0] - later[0][0] if later else 0.0
        slope = self.later_slope_mb_per_min.get(process)
        return max(0.0, slope or 0.0) * span_s / 60.0

    def flat(self, process: str) -> bool:
        limit = self.threshold_mb[process]
        return self.growth_mb(process) <= limit and self.drift_mb(process) <= limit


@dataclass
class SwapVideoResults:
    started_at: str
    duration_s: float
    machine: dict[str, Any]
    setup: dict[str, Any]
    clip: dict[str, Any] = field(default_factory=dict)  # the ClipPlan and the written clip
    calibration: dict[str, float] = field(default_factory=dict)
    runs: list[PathRun] = field(default_factory=list)
    batch_costs: list[BatchCost] = field(default_factory=list)
    memory: MemoryRun | None = None
    full_stack_peaks: dict[str, dict[str, float]] = field(default_factory=dict)  # step → MiB
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: str = KIND

    def path_runs(self, path: str) -> list[PathRun]:
        return [r for r in self.runs if r.path == path]

    def run(self, path: str) -> PathRun | None:
        """The path's rounds as one run (sums; per-frame and per-face medians of the first)."""
        found = self.path_runs(path)
        return combine(found) if found else None

    def fps_of(self, path: str) -> list[float]:
        return [r.fps for r in self.path_runs(path)]

    @property
    def fps_ratio(self) -> float | None:
        """Median fps of Facet's rounds ÷ median fps of FaceFusion's way's rounds."""
        facet, baseline = self.fps_of(FACET), self.fps_of(BASELINE)
        if not facet or not baseline:
            return None
        return ratio(median(facet), median(baseline))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwapVideoResults:
        def delta(raw: dict[str, Any]) -> ModelDelta:
            by_batch = {int(k): list(v) for k, v in raw.get("by_batch", {}).items()}
            return ModelDelta(**{**raw, "by_batch": by_batch})

        runs = [
            PathRun(**{**raw, "triton": [delta(m) for m in raw.get("triton", [])]})
            for raw in data.get("runs", [])
        ]
        memory = data.get("memory")
        return cls(
            started_at=data["started_at"],
            duration_s=data["duration_s"],
            machine=data["machine"],
            setup=data["setup"],
            clip=data.get("clip", {}),
            calibration=data.get("calibration", {}),
            runs=runs,
            batch_costs=[BatchCost(**b) for b in data.get("batch_costs", [])],
            memory=MemoryRun(**memory) if memory else None,
            full_stack_peaks=data.get("full_stack_peaks", {}),
            skipped=list(data.get("skipped", [])),
            failed=list(data.get("failed", [])),
            notes=list(data.get("notes", [])),
        )
