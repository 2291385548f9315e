"""What one user-level (`--full`) benchmark run measured, as plain dataclasses kept as JSON and
rendered by perf.realistic_report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from perf.results import Point, StageTimes
from perf.stats import LatencySummary, is_number, median

KIND: Final = "realistic"
UPSCALE: Final = "upscale"
RESTORE: Final = "restore"
FLOORS: Final = "floors"
MEMORY: Final = "memory"
SCENARIOS: Final = (UPSCALE, RESTORE, FLOORS, MEMORY)

GATEWAY: Final = "gateway"
DIRECT: Final = "triton_direct"
SEEDS: Final = "seeds"
CASE_PATHS: Final = (GATEWAY, DIRECT, SEEDS)
PATH_LABELS: Final = {
    GATEWAY: "Facet gateway (REST, as a client)",
    DIRECT: "Triton direct (gRPC, client-side pipeline, no codec)",
    SEEDS: "seeds' way (PyTorch in-process)",
}

ORT_F32: Final = "onnxruntime_f32"
OV_F32: Final = "openvino_f32"
TRITON_SERVED: Final = "triton"
RUNTIMES: Final = (ORT_F32, OV_F32, TRITON_SERVED)
RUNTIME_LABELS: Final = {
    ORT_F32: "ONNX Runtime FP32 in-process",
    OV_F32: "OpenVINO FP32 in-process",
    TRITON_SERVED: "Triton direct (gRPC to the served model)",
}


@dataclass
class CaseRun:
    """One path of one case (scenario, model, input) at one concurrency."""

    scenario: str
    model: str
    side: int  # the upload's longer side
    point: Point  # point.path is one of CASE_PATHS
    stages: list[StageTimes] = field(default_factory=list)  # Triton's counters during the run
    notes: dict[str, float] = field(default_factory=dict)  # per-request medians (ms, counts)

    @property
    def path(self) -> str:
        return self.point.path

    @property
    def concurrency(self) -> int:
        return self.point.concurrency

    @property
    def seconds_per_request(self) -> float | None:
        throughput = self.point.throughput
        return 1.0 / throughput if throughput > 0 and math.isfinite(throughput) else None

    def stage(self, model: str) -> StageTimes | None:
        return next((s for s in self.stages if s.model == model), None)

    @property
    def label(self) -> str:
        return case_label(self.scenario, self.model, self.side)


def case_label(scenario: str, model: str, side: int) -> str:
    if scenario == RESTORE:
        return f"{model}, group photo (longest side {side} px)"
    return f"{model} {side}²"


@dataclass
class CaseCost:
    """What the gateway does around the model for one case, timed in-process (medians)."""

    scenario: str
    model: str
    side: int
    upload_bytes: int
    image_pixels: int  # pixels of the upload
    model_inputs: int  # tiles (upscale) or faces (restore) per request
    model_pixels: int  # pixels the served model computes per request (windows or 512² faces)
    decode_ms: float
    encode_ms: float
    decodes: int  # per gateway request: the API validates the upload; an upscale job decodes it
    pipeline_ms: float  # cutting + stitching tiles, or aligning + pasting faces

    @property
    def codec_ms(self) -> float:
        return self.decodes * self.decode_ms + self.encode_ms


@dataclass
class FloorRun:
    """One model at one batch on one runtime: milliseconds per call, one entry per timed call."""

    model: str
    item: str  # "148² tile", "512² face"
    runtime: str  # one of RUNTIMES
    batch: int
    runs_ms: list[float]
    server_ms_per_item: float | None = None  # Triton's compute per inference (served only)
    threads: int = 0

    @property
    def median_ms(self) -> float:
        return median(self.runs_ms)

    @property
    def ms_per_item(self) -> float:
        return self.median_ms / self.batch

    @property
    def items_per_s(self) -> float:
        return 1000.0 / self.ms_per_item if self.ms_per_item > 0 else math.nan


@dataclass
class MemoryPeak:
    process: str  # "triton", "gateway", "benchmark"
    peak_rss_mb: float
    peak_pss_mb: float
    processes: int  # in the tree at the RSS peak
    peak_step: str
    by_step: dict[str, float] = field(default_factory=dict)  # step → peak RSS (MiB)


@dataclass
class LeakCheck:
    requests: int
    mix: list[str]  # the kinds of request, cycled
    warmup: int
    before_mb: float
    after_mb: float
    threshold_mb: float
    samples: list[list[float]] = field(default_factory=list)  # [requests sent, RSS MiB]
    seconds: float = 0.0
    failures: int = 0  # requests answered with an unexpected status

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.before_mb

    @property
    def leaked(self) -> bool:
        return self.growth_mb > self.threshold_mb

    @property
    def verdict(self) -> str:
        if self.leaked:
            return (
                f"growth {self.growth_mb:+.1f} MiB exceeds the {self.threshold_mb:.1f} MiB noise "
                "threshold: possible leak"
            )
        return (
            f"no leak: growth {self.growth_mb:+.1f} MiB within the {self.threshold_mb:.1f} MiB "
            "noise threshold"
        )


@dataclass
class Setup:
    repository: str
    tiny: bool
    scenarios: list[str]
    budget_s: float
    sizes: list[int]
    levels: list[int]
    direct_levels: list[int]
    sweep_model: str
    latency_model: str  # "" when not measured
    latency_side: int
    requests: dict[int, int]  # concurrency → requests per run (upscale)
    restore_requests: int
    restore_photo: str  # where the group photo came from
    restore_upscale: int
    floor_runs: int
    floor_batches: list[int]
    weights: dict[str, str]  # model → weights kind (manifest)
    threads: dict[str, int]  # model → intra-op threads of its config
    served_runtime: dict[str, str]  # model → the backend its config names
    gateway_settings: dict[str, str]
    tile: int
    tile_pad: int
    pre_pad: int


@dataclass
class RealisticResults:
    started_at: str
    duration_s: float
    machine: dict[str, Any]
    setup: Setup
    runs: list[CaseRun] = field(default_factory=list)
    costs: list[CaseCost] = field(default_factory=list)
    floors: list[FloorRun] = field(default_factory=list)
    memory: list[MemoryPeak] = field(default_factory=list)
    leak: LeakCheck | None = None
    timeline: list[list[Any]] = field(default_factory=list)  # [s, process, RSS MiB]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"step", "reason"}
    failed: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: str = KIND

    # --- look-ups -------------------------------------------------------------------------

    def run(self, scenario: str, model: str, side: int, path: str, level: int) -> CaseRun | None:
        for run in self.runs:
            if (run.scenario, run.model, run.side, run.path, run.concurrency) == (
                scenario,
                model,
                side,
                path,
                level,
            ):
                return run
        return None

    def case_runs(self, scenario: str, model: str, side: int, path: str) -> list[CaseRun]:
        found = [
            r
            for r in self.runs
            if (r.scenario, r.model, r.side, r.path) == (scenario, model, side, path)
        ]
        return sorted(found, key=lambda r: r.concurrency)

    def cases(self, scenario: str) -> list[tuple[str, int]]:
        """(model, side) of every case of a scenario, in the order first measured."""
        seen: list[tuple[str, int]] = []
        for run in self.runs:
            if run.scenario == scenario and (run.model, run.side) not in seen:
                seen.append((run.model, run.side))
        return seen

    def cost(self, scenario: str, model: str, side: int) -> CaseCost | None:
        for cost in self.costs:
            if (cost.scenario, cost.model, cost.side) == (scenario, model, side):
                return cost
        return None

    def floor(self, model: str, runtime: str, batch: int) -> FloorRun | None:
        for run in self.floors:
            if (run.model, run.runtime, run.batch) == (model, runtime, batch):
                return run
        return None

    def floor_models(self) -> list[str]:
        return list(dict.fromkeys(run.model for run in self.floors))

    # --- checks and JSON ------------------------------------------------------------------

    def all_numbers(self) -> list[tuple[str, object]]:
        found: list[tuple[str, object]] = []
        for run in self.runs:
            name = f"{run.scenario}.{run.model}.{run.side}.{run.path}@{run.concurrency}"
            found.append((f"{name}.throughput", run.point.throughput))
            found.append((f"{name}.p50_ms", run.point.latency.p50_ms))
        for floor in self.floors:
            found.append((f"floor.{floor.model}.{floor.runtime}.b{floor.batch}", floor.median_ms))
        for peak in self.memory:
            found.append((f"memory.{peak.process}.peak_rss_mb", peak.peak_rss_mb))
        if self.leak is not None:
            found.append(("leak.growth_mb", self.leak.growth_mb))
        return found

    def missing_numbers(self) -> list[str]:
        return [name for name, value in self.all_numbers() if not is_number(value)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RealisticResults:
        setup = dict(data["setup"])
        setup["requests"] = {int(k): v for k, v in setup["requests"].items()}
        runs = []
        for raw in data["runs"]:
            point = dict(raw["point"])
            point["latency"] = LatencySummary(**point["latency"])
            runs.append(
                CaseRun(
                    scenario=raw["scenario"],
                    model=raw["model"],
                    side=raw["side"],
                    point=Point(**point),
                    stages=[StageTimes(**s) for s in raw["stages"]],
                    notes=dict(raw["notes"]),
                )
            )
        leak = data.get("leak")
        return cls(
            started_at=data["started_at"],
            duration_s=data["duration_s"],
            machine=data["machine"],
            setup=Setup(**setup),
            runs=runs,
            costs=[CaseCost(**c) for c in data["costs"]],
            floors=[FloorRun(**f) for f in data["floors"]],
            memory=[MemoryPeak(**m) for m in data["memory"]],
            leak=LeakCheck(**leak) if leak else None,
            timeline=[list(entry) for entry in data["timeline"]],
            skipped=[dict(s) for s in data["skipped"]],
            failed=[dict(f) for f in data["failed"]],
            notes=list(data["notes"]),
        )
