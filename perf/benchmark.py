"""Facet's benchmarks, in one command.

The ratio sweep (default; --quick on tiny models for CI): one model, one input (real-photo
tiles and a whole photo), one thread budget:

  (a) ort                 ONNX Runtime in-process on the exported model file: the floor
  (b) triton_batching     Triton over gRPC with the committed config (dynamic batching)
  (c) triton_no_batching  a second Triton on a copy of that config without dynamic_batching
  (d) gateway             the REST API: upload a photo, poll its status, download the result
  (e) pytorch             the same architecture in PyTorch, called once per request

The user-level benchmark (--full): what users do, against the seeds' way, on one machine:

  upscale   astronaut/coffee/chelsea JPEGs (256², 512²) ×4 through the gateway (submit, poll,
            download), Triton direct and PyTorch on the whole image (RealESRGANer, tile=0), at
            concurrency 1, 4, 8 (realesr_general_x4v3); realesrgan_x4plus on one 256² photo, c=1
  restore   a group photo with ≥ 5 faces (insightface's t1.jpg, else a built one) through
            POST /restore, Triton direct and GFPGANer's way (same MTCNN, PyTorch once per face)
  memory    the gateway's RSS before and after 1,000 small requests (health, status, refused
            uploads, metrics), with a verdict against a stated noise threshold
  floors    x4plus 148² tiles and GFPGAN 512² faces, batch 1 and 4: ONNX Runtime FP32 and
            OpenVINO FP32 in-process, and the served model through Triton
  Peak RSS of Triton (tritonserver + its stubs) and the gateway is sampled all along. A global
  budget (--budget-min, default 25) skips the steps that no longer fit, and says so.

Triton and the gateway are started here on free ports (serving.launcher; `python -m gateway`).
Reports (markdown + PNG plots) go to perf/reports/<date>-<machine>[-realistic].md, with the
raw numbers under perf/reports/raw/; the ratios against their targets are printed.

Examples:
  python -m perf.benchmark --quick                       # CI check, ~20 s
  python -m perf.benchmark --full                        # every scenario, ≤ 25 min
  python -m perf.benchmark --full --scenarios upscale,restore --budget-min 15
  python -m perf.benchmark --full --tiny                 # smoke run on tiny models
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from perf import realistic_options, samples
from perf.cpu import CpuMeter, CpuUse
from perf.loadgen import Request, RequestFactory, run_closed_loop
from perf.machine import describe, machine_tag
from perf.report import Target, write_report
from perf.results import (
    GATEWAY,
    IMAGE_PATHS,
    ORT,
    PATHS,
    PYTORCH,
    TRITON,
    TRITON_NO_BATCHING,
    BatchCost,
    Codec,
    Point,
    Results,
    Setup,
)
from perf.seeds import load_torch_model, read_manifest
from perf.servers import (
    Gateway,
    build_repository,
    config_threads,
    installed_models,
    read_config,
    start_triton,
    without_batching,
)
from perf.stats import LatencySummary
from perf.triton_stats import Counters, read_all, stage_times

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPORTS = ROOT / "perf" / "reports"
DEFAULT_WORK = ROOT / "build" / "perf"
DEFAULT_MODEL = "realesrgan_x4plus"
DISTINCT_TILES = 16
UPLOAD_FORMAT = "JPEG"
PREPOST = ("image_to_tensor", "tensor_to_image")
HTTP_TIMEOUT_S = 600.0
JOB_TIMEOUT_S = 900.0
# Generous decode limits: the benchmark's own photo, never a hostile upload.
DECODE_LIMITS: dict[str, int] = {
    "max_bytes": 1 << 30,
    "max_pixels": 1 << 30,
    "max_side": 1 << 15,
}


@dataclass
class Options:
    repository: Path | None
    model: str
    quick: bool
    concurrency: list[int]
    repeats: int
    tile: int
    tile_pad: int
    image_side: int
    tile_requests_per_client: int
    min_tile_requests: int
    image_requests_per_client: int
    min_image_requests: int
    warmup: int
    batch_sizes: list[int]
    codec_runs: int
    poll_interval_s: float
    retries: int
    max_other_cores: float
    gateway_env: dict[str, str]
    out: Path
    work: Path
    tag: str | None

    @property
    def core(self) -> int:
        """The gateway's tile core: windows of `tile` are the core plus pad on each side."""
        return self.tile - 2 * self.tile_pad

    def tile_requests(self, concurrency: int) -> int:
        return max(self.min_tile_requests, concurrency * self.tile_requests_per_client)

    def image_requests(self, concurrency: int) -> int:
        return max(self.min_image_requests, concurrency * self.image_requests_per_client)


def int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2,4,8; got {text!r}")
    return sorted(set(values))


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("FACET_"):
        raise argparse.ArgumentTypeError(f"expected FACET_NAME=value, got {text!r}")
    return key, value


QUICK_DEFAULTS: dict[str, Any] = {
    "concurrency": [1, 2],
    "repeats": 2,
    "tile": 32,
    "tile_pad": 4,
    "tile_requests_per_client": 2,
    "min_tile_requests": 4,
    "image_requests_per_client": 1,
    "min_image_requests": 2,
    "warmup": 2,
    "batch_sizes": [1, 2],
    "codec_runs": 5,
    "poll_interval_s": 0.02,
    "retries": 0,
    "max_other_cores": 0.3,
}
FULL_DEFAULTS: dict[str, Any] = {
    "concurrency": [1, 2, 4, 8],
    "repeats": 3,
    # x4plus needs ~0.6 s per 48² tile on 2 cores: this keeps the default run near 10 min there.
    "tile": 48,
    "tile_pad": 6,
    "tile_requests_per_client": 2,
    "min_tile_requests": 4,
    "image_requests_per_client": 1,
    "min_image_requests": 2,
    "warmup": 2,
    "batch_sizes": [1, 4],
    "codec_runs": 10,
    "poll_interval_s": 0.05,
    "retries": 1,
    "max_other_cores": 0.3,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perf.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="ratio sweep on tiny synthetic models, 2 levels, a few requests (CI)",
    )
    add(
        "--repository",
        type=Path,
        default=None,
        help="model repository with the model installed (default: model_repository when it "
        "has the model, else one is built under --work; --quick always builds a tiny one)",
    )
    add("--model", default=DEFAULT_MODEL, help="float model to measure (default: %(default)s)")
    add("--concurrency", type=int_list, help="levels, e.g. 1,2,4,8 (quick: 1,2; --full: 1,4,8)")
    add(
        "--repeats",
        type=int,
        help="runs per level; medians are reported (default 3, quick 2, --full 1)",
    )
    add("--tile", type=int, help="side of every tile sent to the model (default 48, quick 32)")
    add(
        "--tile-pad",
        type=int,
        help="gateway context per side; its tile core is tile - 2·pad (default 6, quick 4)",
    )
    add(
        "--image-side",
        type=int,
        help="side of the uploaded photo (default: 2 cores, i.e. 2×2 tiles)",
    )
    add("--tile-requests-per-client", type=int, help="tile requests per client thread (2)")
    add("--min-tile-requests", type=int, help="at least this many tile requests per level (4)")
    add("--image-requests-per-client", type=int, help="image requests per client thread (1)")
    add("--min-image-requests", type=int, help="at least this many images per level (2)")
    add("--warmup", type=int, help="warm-up requests per path before measuring (2; --full 1)")
    add("--batch-sizes", type=int_list, help="ORT batch sizes to cost per tile (1,4; quick 1,2)")
    add("--codec-runs", type=int, help="decode/encode timings to take the median of (10)")
    add(
        "--poll-interval",
        type=float,
        dest="poll_interval_s",
        help="gateway status poll, s (0.05; quick 0.02); --full: the first poll, then ×1.5 up "
        "to 2 s as Facet's REST client polls (0.25)",
    )
    add(
        "--retries",
        type=int,
        help="re-runs of a measurement that other work on the machine disturbed (1; quick 0)",
    )
    add(
        "--max-other-cores",
        type=float,
        help="cores busy with other work above which a run counts as disturbed (0.3)",
    )
    add(
        "--gateway-env",
        type=key_value,
        action="append",
        default=[],
        metavar="FACET_X=V",
        help="extra gateway setting (repeatable), e.g. FACET_JOB_WORKERS=2",
    )
    add(
        "--out",
        type=Path,
        default=None,
        help="report directory (default perf/reports; quick: build/perf/quick-report)",
    )
    add("--work", type=Path, default=DEFAULT_WORK, help="scratch directory (%(default)s)")
    add("--tag", default=None, help="machine tag in the report name (default: from the host)")
    add(
        "--render",
        type=Path,
        default=None,
        metavar="RAW_JSON",
        help="measure nothing: rewrite the report of a saved run (<out>/raw/<name>.json)",
    )
    realistic_options.add_arguments(parser)
    return parser


def options_from_args(args: argparse.Namespace) -> Options:
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    values = {
        key: getattr(args, key) if getattr(args, key) is not None else default
        for key, default in defaults.items()
    }
    core = values["tile"] - 2 * values["tile_pad"]
    if core < 1:
        raise SystemExit("--tile must exceed 2 × --tile-pad")
    out = args.out or (DEFAULT_WORK / "quick-report" if args.quick else DEFAULT_REPORTS)
    return Options(
        repository=args.repository,
        model=args.model,
        quick=args.quick,
        image_side=args.image_side or 2 * core,
        gateway_env=dict(args.gateway_env),
        out=out,
        work=args.work,
        tag=args.tag,
        **values,
    )


# --- preparation -----------------------------------------------------------------------------


def prepare_repository(options: Options) -> Path:
    """The repository to serve: a tiny one for --quick, else the given or committed one,
    exported into when the model is missing."""
    needed = {options.model, f"upscale_{options.model}", *PREPOST}
    if options.quick:
        root = options.work / "quick-repository"
        root.mkdir(parents=True, exist_ok=True)
        return build_repository(root, [options.model], tiny=True, weights="synthetic")
    root = options.repository or ROOT / "model_repository"
    if root.is_dir() and needed <= set(installed_models(root)):
        return root
    if options.repository is None:
        root = options.work / "repository"
    say(f"exporting {options.model} into {root} (weights: auto)")
    root.mkdir(parents=True, exist_ok=True)
    return build_repository(root, [options.model], tiny=False, weights="auto")


def describe_batching(repository: Path, model: str) -> str:
    config = read_config(repository / model / "config.pbtxt")
    if not config.HasField("dynamic_batching"):
        return "none"
    batching = config.dynamic_batching
    preferred = list(batching.preferred_batch_size)
    return (
        f"max_batch_size {config.max_batch_size}, preferred {preferred}, max_queue_delay "
        f"{batching.max_queue_delay_microseconds} µs, "
        f"{sum(g.count for g in config.instance_group) or 1} instance(s)"
    )


def say(message: str) -> None:
    """Progress for the operator (stderr; the summary goes to stdout)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# --- in-process measurements -----------------------------------------------------------------


def open_ort_session(path: Path, intra: int, inter: int) -> Any:
    """The same session options as the facet_ort backend."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra
    options.inter_op_num_threads = inter
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def measure_batch_costs(
    session: Any, floats: np.ndarray[Any, Any], sizes: Sequence[int], runs: int
) -> list[BatchCost]:
    costs = []
    for size in sizes:
        batch = np.ascontiguousarray(np.resize(floats, (size, *floats.shape[1:])))
        session.run(None, {"low_res": batch})  # first run of a shape allocates
        times = []
        for _ in range(max(1, runs)):
            start = time.perf_counter()
            session.run(None, {"low_res": batch})
            times.append(time.perf_counter() - start)
        # The fastest run: the cost of the work itself, least disturbed by anything else.
        costs.append(BatchCost(batch=size, ms_per_tile=1000.0 * min(times) / size))
    return costs


def measure_codec(upload: bytes, image_side: int, runs: int) -> Codec:
    from gateway.imageio import decode_image, encode_image, output_format_for

    decode_times, encode_times = [], []
    decoded = decode_image(upload, **DECODE_LIMITS)
    result_format = output_format_for(decoded, outscale=4)
    upscaled = samples.photo_image(4 * image_side)
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        decode_image(upload, **DECODE_LIMITS)
        decode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        encode_image(upscaled, None, result_format)
        encode_times.append(time.perf_counter() - start)
    return Codec(
        upload_format=decoded.format,
        result_format=result_format,
        upload_bytes=len(upload),
        decode_ms=1000.0 * statistics.median(decode_times),
        encode_ms=1000.0 * statistics.median(encode_times),
    )


# --- request factories -----------------------------------------------------------------------


def ort_factory(session: Any, floats: np.ndarray[Any, Any]) -> RequestFactory:
    def factory() -> Request:
        def request(index: int) -> object:
            return session.run(["high_res"], {"low_res": floats[index % len(floats)][None]})

        return request

    return factory


def triton_factory(url: str, model: str, floats: np.ndarray[Any, Any]) -> RequestFactory:
    import tritonclient.grpc as grpcclient

    def factory() -> Request:
        client = grpcclient.InferenceServerClient(url)
        inputs = []
        for tile in floats:
            tensor = grpcclient.InferInput("low_res", [1, *tile.shape], "FP32")
            tensor.set_data_from_numpy(tile[None])
            inputs.append(tensor)
        outputs = [grpcclient.InferRequestedOutput("high_res")]

        def request(index: int) -> object:
            result = client.infer(model, [inputs[index % len(inputs)]], outputs=outputs)
            return result.as_numpy("high_res")

        return request

    return factory


def gateway_factory(url: str, upload: bytes, poll_s: float) -> RequestFactory:
    import httpx

    def factory() -> Request:
        client = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

        def request(index: int) -> object:
            submitted = client.post(
                "/upscale",
                files={"file": (f"photo{index}.jpg", upload, "image/jpeg")},
                data={"scale": "4"},
            )
            submitted.raise_for_status()
            job_id = submitted.json()["job_id"]
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while True:
                status = client.get(f"/status/{job_id}").json()
                if status["status"] == "completed":
                    break
                if status["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} ended {status['status']}: {status}")
                time.sleep(poll_s)
            result = client.get(status["result_url"])
            result.raise_for_status()
            if not result.content:
                raise RuntimeError(f"job {job_id}: empty result")
            return result.content

        return request

    return factory


def pytorch_factory(module: Any, upload: bytes, result_format: str) -> RequestFactory:
    """Seed-style serving: decode the upload, run the whole image through the model, encode."""
    import torch

    from gateway.imageio import decode_image, encode_image

    def factory() -> Request:
        def request(index: int) -> object:
            decoded = decode_image(upload, **DECODE_LIMITS)
            tensor = torch.from_numpy(samples.to_nchw_float(decoded.rgb[None]))
            with torch.inference_mode():
                output = module(tensor)
            pixels = (output.clamp(0, 1) * 255.0).round().to(torch.uint8)[0].permute(1, 2, 0)
            return encode_image(np.ascontiguousarray(pixels.numpy()), None, result_format)  # type: ignore[arg-type]

        return request

    return factory


# --- the sweep -------------------------------------------------------------------------------


@dataclass
class MeasuredPath:
    """One measured path: how to send its requests and which Triton models to watch."""

    path: str
    factory: RequestFactory
    unit: str
    stats_url: str | None = None
    stats_models: tuple[str, ...] = ()


@dataclass
class Attempt:
    """One closed-loop run of one path at one level, with what it cost and Triton's view."""

    throughput: float
    latency: LatencySummary
    cpu: CpuUse
    deltas: dict[str, Counters]


@dataclass
class Sweep:
    """Every path at every level, `repeats` times. Within a repeat the paths run back to back at
    each level, so the numbers a ratio divides are taken close together in time. A run during
    which other work kept more than `max_other_cores` busy is run again (up to `retries` times)
    and the least disturbed attempt is kept."""

    options: Options
    targets: list[MeasuredPath]
    attempts: dict[tuple[str, int], list[Attempt]] = field(default_factory=dict)
    reruns: int = 0

    def requests(self, path: str, concurrency: int) -> int:
        if path in IMAGE_PATHS:
            return self.options.image_requests(concurrency)
        return self.options.tile_requests(concurrency)

    def total_requests(self) -> int:
        per_repeat = sum(
            self.requests(t.path, c) for t in self.targets for c in self.options.concurrency
        )
        warmups = self.options.warmup * len(self.targets)
        return per_repeat * self.options.repeats + warmups

    def run(self) -> None:
        import tritonclient.grpc as grpcclient

        urls = {t.stats_url for t in self.targets if t.stats_url}
        clients = {url: grpcclient.InferenceServerClient(url) for url in urls}
        try:
            with tqdm(total=self.total_requests(), unit="req", desc="benchmark") as bar:
                self._warm_up(bar)
                for repeat in range(self.options.repeats):
                    for level in self.options.concurrency:
                        for target in self.targets:
                            bar.set_description(f"{target.path} c={level} #{repeat + 1}")
                            kept = self._measure_least_disturbed(target, level, clients, bar)
                            self.attempts.setdefault((target.path, level), []).append(kept)
        finally:
            for client in clients.values():
                client.close()

    def _warm_up(self, bar: tqdm[None]) -> None:
        if self.options.warmup < 1:
            return
        for target in self.targets:
            bar.set_description(f"warm-up {target.path}")
            run_closed_loop(
                target.factory, min(2, self.options.warmup), self.options.warmup, progress=bar
            )

    def _measure_least_disturbed(
        self, target: MeasuredPath, level: int, clients: dict[str, Any], bar: tqdm[None]
    ) -> Attempt:
        best = self._measure(target, level, clients, bar)
        for _ in range(self.options.retries):
            if best.cpu.other_cores <= self.options.max_other_cores:
                break
            self.reruns += 1
            bar.total = (bar.total or 0) + self.requests(target.path, level)
            again = self._measure(target, level, clients, bar)
            if again.cpu.other_cores < best.cpu.other_cores:
                best = again
        return best

    def _measure(
        self, target: MeasuredPath, level: int, clients: dict[str, Any], bar: tqdm[None]
    ) -> Attempt:
        client = clients.get(target.stats_url) if target.stats_url else None
        before = read_all(client, target.stats_models) if client else {}
        meter = CpuMeter()
        meter.start()
        result = run_closed_loop(
            target.factory, level, self.requests(target.path, level), progress=bar
        )
        cpu = meter.stop()
        after = read_all(client, target.stats_models) if client else {}
        return Attempt(
            throughput=result.throughput,
            latency=LatencySummary.of_seconds(result.latencies_s),
            cpu=cpu,
            deltas={model: after[model] - before[model] for model in target.stats_models},
        )

    def counters(self) -> dict[tuple[str, int, str], Counters]:
        """Triton's counters summed over the kept attempts of each path and level."""
        summed: dict[tuple[str, int, str], Counters] = {}
        for (path, level), attempts in self.attempts.items():
            for attempt in attempts:
                for model, delta in attempt.deltas.items():
                    key = (path, level, model)
                    summed[key] = summed.get(key, Counters()) + delta
        return summed

    def points(self) -> list[Point]:
        units = {t.path: t.unit for t in self.targets}
        return [
            Point(
                path=path,
                concurrency=level,
                unit=units[path],
                throughputs=[a.throughput for a in attempts],
                latency=LatencySummary.median_of([a.latency for a in attempts]),
                requests_per_repeat=self.requests(path, level),
                own_cores=[a.cpu.own_cores for a in attempts],
                other_cores=[a.cpu.other_cores for a in attempts],
            )
            for (path, level), attempts in self.attempts.items()
        ]


@contextlib.contextmanager
def running_stack(
    repository: Path, nobatch_repository: Path, model: str, gateway: Gateway, work: Path
) -> Iterator[tuple[Any, Any]]:
    """Both Tritons (started side by side: start-up is mostly waiting) and the gateway. The
    first serves the model, its ensemble and the pre/post graphs; the second the model alone."""
    from serving.launcher import TritonServer

    servers: dict[str, TritonServer] = {}
    errors: list[BaseException] = []

    def start(name: str, repo: Path, models: list[str]) -> None:
        try:
            servers[name] = start_triton(repo, work / f"triton-{name}", models)
        except BaseException as error:
            errors.append(error)

    full = [*PREPOST, model, f"upscale_{model}"]
    threads = [
        threading.Thread(target=start, args=("batching", repository, full)),
        threading.Thread(target=start, args=("no-batching", nobatch_repository, [model])),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        gateway.triton_grpc_url = servers["batching"].grpc_url
        gateway.start()
        yield servers["batching"], servers["no-batching"]
    finally:
        gateway.stop()
        for server in servers.values():
            server.stop()


def run_benchmark(options: Options) -> tuple[Results, Path, list[Target]]:
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = describe()
    repository = prepare_repository(options)
    model_config = read_config(repository / options.model / "config.pbtxt")
    threads = config_threads(model_config)
    manifest = read_manifest(repository, options.model)
    variant = str(manifest.get("variant", "tiny" if options.quick else "full"))

    from triton_core.tiling import plan_tiles

    tiles = samples.photo_tiles(DISTINCT_TILES, options.tile)
    floats = samples.to_nchw_float(tiles)
    upload = samples.encode(samples.photo_image(options.image_side), UPLOAD_FORMAT)
    tiles_per_image = len(
        plan_tiles(options.image_side, options.image_side, options.core, options.tile_pad)
    )

    say("timing image coding, ONNX Runtime batch cost, loading the PyTorch model")
    codec = measure_codec(upload, options.image_side, options.codec_runs)
    session = open_ort_session(repository / options.model / "1" / "model.onnx", *threads)
    batch_costs = measure_batch_costs(session, floats, options.batch_sizes, max(1, options.repeats))
    torch_model = load_torch_model(repository, options.model, variant == "tiny", threads)

    work = options.work
    nobatch_repository = work / "nobatch-repository"
    shutil.rmtree(nobatch_repository, ignore_errors=True)
    without_batching(repository, options.model, nobatch_repository)
    gateway_data = work / "gateway"
    shutil.rmtree(gateway_data, ignore_errors=True)
    gateway_settings = {
        "FACET_UPSCALE_MODEL": options.model,
        "FACET_TILE_SIZE": str(options.core),
        "FACET_TILE_PAD": str(options.tile_pad),
        "FACET_PRE_PAD": "10",
        "FACET_JOB_WORKERS": "1",
        **options.gateway_env,
    }
    gateway = Gateway("", repository, gateway_data, gateway_settings)

    say("starting Triton (committed config), Triton (no dynamic batching) and the gateway")
    with running_stack(repository, nobatch_repository, options.model, gateway, work) as (
        triton,
        nobatch,
    ):
        ensemble = f"upscale_{options.model}"
        targets = [
            MeasuredPath(ORT, ort_factory(session, floats), "tiles/s"),
            MeasuredPath(
                TRITON,
                triton_factory(triton.grpc_url, options.model, floats),
                "tiles/s",
                triton.grpc_url,
                (options.model,),
            ),
            MeasuredPath(
                TRITON_NO_BATCHING,
                triton_factory(nobatch.grpc_url, options.model, floats),
                "tiles/s",
                nobatch.grpc_url,
                (options.model,),
            ),
            MeasuredPath(
                GATEWAY,
                gateway_factory(gateway.url, upload, options.poll_interval_s),
                "images/s",
                triton.grpc_url,
                (ensemble, options.model, *PREPOST),
            ),
            MeasuredPath(
                PYTORCH, pytorch_factory(torch_model, upload, codec.result_format), "images/s"
            ),
        ]
        sweep = Sweep(options, targets)
        sweep.run()

    stages = [
        stage_times(model, path, level, delta)
        for (path, level, model), delta in sorted(sweep.counters().items())
    ]
    results = Results(
        started_at=started_at,
        duration_s=0.0,
        machine=machine.as_dict(),
        setup=Setup(
            model=options.model,
            variant=variant,
            weights=str(manifest.get("weights_kind", "unknown")),
            tile=options.tile,
            image_side=options.image_side,
            tiles_per_image=tiles_per_image,
            concurrency=options.concurrency,
            repeats=options.repeats,
            tile_requests={c: options.tile_requests(c) for c in options.concurrency},
            image_requests={c: options.image_requests(c) for c in options.concurrency},
            intra_op_threads=threads[0],
            inter_op_threads=threads[1],
            triton_batching=describe_batching(repository, options.model),
            gateway_settings=gateway_settings,
            quick=options.quick,
            repository=display_path(repository),
        ),
        points=sorted(sweep.points(), key=lambda p: (PATHS.index(p.path), p.concurrency)),
        stages=stages,
        codec=codec,
        batch_costs=batch_costs,
    )
    results.machine["load_average_end"] = describe().load_average
    results.notes.append(
        f"Load average (1, 5, 15 min) at start {machine.load_average}, at the end "
        f"{results.machine['load_average_end']}. The `cores` column of the throughput table "
        "gives, per point, the cores our processes used and the cores other work on the machine "
        "used during the measurement (medians over repeats)."
    )
    if options.retries > 0:
        results.notes.append(
            f"A run during which other work kept more than {options.max_other_cores:g} cores busy "
            f"was run again (up to {options.retries} time(s)) and the least disturbed attempt "
            f"kept: {sweep.reruns} re-run(s) in this report."
        )
    results.duration_s = time.monotonic() - started
    stem = f"{started_at[:10]}-{options.tag or machine_tag(machine)}"
    if options.quick:
        stem += "-quick"
    markdown, evaluated = write_report(results, options.out, stem)
    raw = options.out / "raw" / f"{stem}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results.as_dict(), indent=2, default=str))
    return results, markdown, evaluated


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def print_summary(results: Results, markdown: Path, targets: Sequence[Target]) -> None:
    out(f"report: {markdown}")
    for target in targets:
        value = "–" if target.value is None else f"{target.value:.2f}"
        goal = f"target {target.comparator} {target.target:g}"
        out(f"{target.name}: {value} ({goal}): {target.status}")
        for line in target.why:
            out(f"    {line}")
    out(f"took {results.duration_s:.0f} s")


def render_saved(raw: Path, out: Path | None) -> tuple[Results, Path, list[Target]]:
    """Rewrite the markdown and plots of a saved run, next to its raw/ folder by default."""
    results = Results.from_dict(json.loads(raw.read_text()))
    directory = out or raw.resolve().parent.parent
    markdown, targets = write_report(results, directory, raw.stem)
    return results, markdown, targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick (the ratio sweep's CI check) and --full exclude each other")
    if args.tiny and not args.full:
        parser.error("--tiny belongs to --full (the ratio sweep has --quick)")
    if args.render is not None:
        if json.loads(args.render.read_text()).get("kind") == "realistic":
            return render_realistic(args.render, args.out)
        results, markdown, targets = render_saved(args.render, args.out)
        print_summary(results, markdown, targets)
        return 0
    if args.full:
        return run_full(args)
    options = options_from_args(args)
    results, markdown, targets = run_benchmark(options)
    print_summary(results, markdown, targets)
    if options.quick:
        missing = results.missing_numbers()
        if missing:
            out(f"quick check FAILED: no number for {', '.join(missing)}")
            return 1
        count = len(results.all_numbers())
        out(f"quick check passed: {count} measurements, all numbers")
    return 0 if all(math.isfinite(p.throughput) for p in results.points) else 1


def run_full(args: argparse.Namespace) -> int:
    """The user-level benchmark; 0 when every step ran and every number came out finite."""
    from perf.realistic import run_realistic

    swap_video = realistic_options.SWAP_VIDEO in args.scenarios
    scenarios = [s for s in args.scenarios if s != realistic_options.SWAP_VIDEO]
    code = 0
    if scenarios:
        default_out = DEFAULT_WORK / "realistic-tiny-report" if args.tiny else DEFAULT_REPORTS
        own = argparse.Namespace(**{**vars(args), "scenarios": scenarios})
        options = realistic_options.from_args(own, default_out)
        results, markdown, targets = run_realistic(options)
        print_realistic(results, markdown, targets)
        code = 0 if not results.failed and not results.missing_numbers() else 1
    if swap_video:
        from perf import swap_video as swap
        from perf.swap_video_options import from_benchmark_args

        swapped, report = swap.run_swap_video(from_benchmark_args(args))
        swap.print_summary(swapped, report)
        code = max(code, 0 if swap.succeeded(swapped) else 1)
    return code


def render_realistic(raw: Path, out: Path | None) -> int:
    from perf.realistic import render_saved as render_saved_realistic

    results, markdown, targets = render_saved_realistic(raw, out)
    print_realistic(results, markdown, targets)
    return 0


def print_realistic(results: Any, markdown: Path, targets: Sequence[Target]) -> None:
    out(f"report: {markdown}")
    for target in targets:
        value = "–" if target.value is None else f"{target.value:.2f}"
        goal = f"target {target.comparator} {target.target:g}"
        out(f"{target.name}: {value} ({goal}): {target.status}")
    for peak in results.memory:
        out(f"peak RSS {peak.process}: {peak.peak_rss_mb:,.0f} MiB (PSS {peak.peak_pss_mb:,.0f})")
    if results.leak is not None:
        out(f"gateway after {results.leak.requests} small requests: {results.leak.verdict}")
    for skipped in results.skipped:
        out(f"skipped: {skipped['step']} ({skipped['reason']})")
    for failed in results.failed:
        out(f"FAILED: {failed['step']}: {failed['reason']}")
    missing = results.missing_numbers()
    if missing:
        out(f"not a number: {', '.join(missing)}")
    out(f"took {results.duration_s:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
