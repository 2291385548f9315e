"""What one benchmark run measured, as plain dataclasses (rendered by perf.report, kept as JSON)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from perf.stats import LatencySummary, is_number, median, ratio

ORT: Final = "ort"
TRITON: Final = "triton_batching"
TRITON_NO_BATCHING: Final = "triton_no_batching"
GATEWAY: Final = "gateway"
PYTORCH: Final = "pytorch"
PATHS: Final = (ORT, TRITON, TRITON_NO_BATCHING, GATEWAY, PYTORCH)
LABELS: Final = {
    ORT: "ONNX Runtime in-process (floor)",
    TRITON: "Triton gRPC, dynamic batching (committed config)",
    TRITON_NO_BATCHING: "Triton gRPC, no dynamic batching",
    GATEWAY: "REST gateway (submit, poll, download)",
    PYTORCH: "PyTorch per request (seed-style baseline)",
}
# Paths whose request is one tile tensor; the others take a whole encoded image.
TILE_PATHS: Final = (ORT, TRITON, TRITON_NO_BATCHING)
IMAGE_PATHS: Final = (GATEWAY, PYTORCH)


@dataclass
class Point:
    """One path at one concurrency: medians over the repeats."""

    path: str
    concurrency: int
    unit: str  # "tiles/s" or "images/s"
    throughputs: list[float]  # one per repeat
    latency: LatencySummary  # field-wise median over repeats
    requests_per_repeat: int
    own_cores: list[float] = field(default_factory=list)  # cores our processes used, per repeat
    other_cores: list[float] = field(default_factory=list)  # cores other work used, per repeat

    @property
    def throughput(self) -> float:
        return median(self.throughputs)


@dataclass
class StageTimes:
    """Triton's statistics for one model during one path's runs at one concurrency, as
    per-request averages (ms) plus batching figures."""

    model: str
    path: str
    concurrency: int
    requests: int
    inferences: int
    executions: int
    request_ms: float  # success: whole time inside Triton
    queue_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float
    compute_per_inference_ms: float  # batch compute time / inferences: cost of one tile

    @property
    def average_batch(self) -> float:
        return self.inferences / self.executions if self.executions else math.nan


@dataclass
class Codec:
    """Image coding done by the gateway, timed in-process with gateway.imageio."""

    upload_format: str
    result_format: str
    upload_bytes: int
    decode_ms: float
    encode_ms: float
    decodes_per_image: int = 2  # the API validates the upload, the job decodes it again

    @property
    def per_image_ms(self) -> float:
        return self.decodes_per_image * self.decode_ms + self.encode_ms


@dataclass
class BatchCost:
    """In-process ONNX Runtime: milliseconds per tile when tiles are run `batch` at a time."""

    batch: int
    ms_per_tile: float


@dataclass
class Setup:
    model: str
    variant: str  # "full" or "tiny"
    weights: str  # manifest weights_kind
    tile: int  # side of every tile sent to the model (gateway windows included)
    image_side: int  # side of the uploaded photo
    tiles_per_image: int
    concurrency: list[int]
    repeats: int
    tile_requests: dict[int, int]  # concurrency → requests per repeat (tile paths)
    image_requests: dict[int, int]  # concurrency → requests per repeat (image paths)
    intra_op_threads: int
    inter_op_threads: int
    triton_batching: str  # the committed dynamic_batching, in words
    gateway_settings: dict[str, str]
    quick: bool
    repository: str


@dataclass
class Results:
    started_at: str
    duration_s: float
    machine: dict[str, Any]
    setup: Setup
    points: list[Point] = field(default_factory=list)
    stages: list[StageTimes] = field(default_factory=list)
    codec: Codec | None = None
    batch_costs: list[BatchCost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def point(self, path: str, concurrency: int) -> Point | None:
        for point in self.points:
            if point.path == path and point.concurrency == concurrency:
                return point
        return None

    def path_points(self, path: str) -> list[Point]:
        return sorted((p for p in self.points if p.path == path), key=lambda p: p.concurrency)

    def best(self, path: str) -> Point | None:
        points = self.path_points(path)
        return max(points, key=lambda p: p.throughput) if points else None

    def stage(self, model: str, path: str, concurrency: int) -> StageTimes | None:
        for stage in self.stages:
            if (stage.model, stage.path, stage.concurrency) == (model, path, concurrency):
                return stage
        return None

    def gateway_tiles_per_s(self, point: Point, exclude_codec: bool) -> float | None:
        """Gateway throughput in model tiles per second (each image is `tiles_per_image` tiles),
        optionally with the image coding time taken out of every image's share of the wall."""
        seconds_per_image = ratio(1.0, point.throughput)
        if seconds_per_image is None:
            return None
        if exclude_codec and self.codec is not None:
            seconds_per_image -= self.codec.per_image_ms / 1000.0
        return ratio(float(self.setup.tiles_per_image), seconds_per_image)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for point, raw in zip(self.points, data["points"], strict=True):
            raw["throughput"] = point.throughput
        return data

    def all_numbers(self) -> list[tuple[str, object]]:
        """Every measured quantity with a name: what --quick checks are numbers."""
        found: list[tuple[str, object]] = []
        for point in self.points:
            name = f"{point.path}@{point.concurrency}"
            found.append((f"{name}.throughput", point.throughput))
            found += [(f"{name}.{key}", value) for key, value in asdict(point.latency).items()]
        for stage in self.stages:
            name = f"stats.{stage.model}.{stage.path}@{stage.concurrency}"
            for key in ("queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms"):
                found.append((f"{name}.{key}", getattr(stage, key)))
        if self.codec is not None:
            found += [("codec.decode_ms", self.codec.decode_ms)]
            found += [("codec.encode_ms", self.codec.encode_ms)]
        found += [(f"ort.batch{c.batch}.ms_per_tile", c.ms_per_tile) for c in self.batch_costs]
        return found

    def missing_numbers(self) -> list[str]:
        """Names of measurements that are absent or not finite numbers."""
        bad = [name for name, value in self.all_numbers() if not is_number(value)]
        for path in PATHS:
            for concurrency in self.setup.concurrency:
                if self.point(path, concurrency) is None:
                    bad.append(f"{path}@{concurrency} (not measured)")
        if self.codec is None:
            bad.append("codec (not measured)")
        if not self.stages:
            bad.append("Triton statistics (not read)")
        return bad

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Rebuild results saved with as_dict() (the JSON under <reports>/raw/)."""
        setup = dict(data["setup"])
        for key in ("tile_requests", "image_requests"):
            setup[key] = {int(level): count for level, count in setup[key].items()}
        points = []
        for raw in data["points"]:
            fields = {k: v for k, v in raw.items() if k != "throughput"}
            fields["latency"] = LatencySummary(**fields["latency"])
            points.append(Point(**fields))
        return cls(
            started_at=data["started_at"],
            duration_s=data["duration_s"],
            machine=data["machine"],
            setup=Setup(**setup),
            points=points,
            stages=[StageTimes(**stage) for stage in data["stages"]],
            codec=Codec(**data["codec"]) if data.get("codec") else None,
            batch_costs=[BatchCost(**cost) for cost in data["batch_costs"]],
            notes=list(data.get("notes", [])),
        )
