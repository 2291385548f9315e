"""Which CPU runtime serves a model, chosen at install time by measurement and fidelity.

Candidates: ONNX Runtime FP32 (the reference the export already checked against PyTorch),
OpenVINO FP32, and OpenVINO BF16 where the CPU has BF16 instructions and the model's output is
an image. OpenVINO FP32 must match PyTorch within the model's FP32 tolerance; BF16 must keep the
output image ≥ 40 dB PSNR against FP32 on a real photo. The fastest candidate that passes is
chosen, OpenVINO only when it beats ONNX Runtime by a clear margin (timings on a busy 2-core box
wobble by a few per cent). Timings use the input the server really receives (the TensorRT
profile's optimum shape, batch 1) and the model's own thread budget. Everything measured is
recorded in the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
import openvino as ov

from export.samples import astronaut_resized, psnr, to_nchw_float
from export.spec import Array, ModelSpec
from export.validate import CheckResult, compare_outputs

Runtime = Literal["onnxruntime", "openvino"]
Precision = Literal["f32", "bf16"]
MIN_BF16_PSNR_DB = 40.0
# OpenVINO must be this much faster than ONNX Runtime to be chosen: repeated measurements on a
# 2-core box differ by a few per cent, and a smaller lead would flip the choice between runs.
MIN_SPEEDUP = 1.10
TIMED_RUNS = 3


@dataclass(frozen=True)
class Candidate:
    runtime: Runtime
    precision: Precision

    @property
    def label(self) -> str:
        return f"{self.runtime}_{self.precision}"


ORT_F32 = Candidate("onnxruntime", "f32")
OV_F32 = Candidate("openvino", "f32")
OV_BF16 = Candidate("openvino", "bf16")


@dataclass
class CpuChoice:
    runtime: Runtime
    precision: Precision
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cpu_capabilities() -> list[str]:
    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def compile_openvino(path: Path, precision: Precision, threads: int) -> ov.CompiledModel:
    options = {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    runtime = ov.Core()
    return runtime.compile_model(runtime.read_model(str(path)), "CPU", options)


def runner(
    path: Path, candidate: Candidate, threads: int
) -> Callable[[dict[str, Array]], list[Array]]:
    """A function running the model with `candidate`: feeds in, outputs in graph order out."""
    if candidate.runtime == "onnxruntime":
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda feeds: list(session.run(None, feeds))
    compiled = compile_openvino(path, candidate.precision, threads)
    request = compiled.create_infer_request()

    def run(feeds: dict[str, Array]) -> list[Array]:
        results = request.infer(feeds)
        return [np.asarray(results[port]) for port in compiled.outputs]

    return run


def serving_input(spec: ModelSpec) -> Array:
    """A real photo at the shape the server receives (batch 1), in the model's input range."""
    if spec.tensorrt is not None:  # N×C×H×W: the shape the profile is tuned for
        height, width = (int(d) for d in spec.tensorrt.opt_shape[-2:])
    else:  # the validation photo, H×W×C, at the model's own input size
        height, width = spec.sample().shape[:2]
    photo = astronaut_resized(max(height, width))[:height, :width]
    tensor = to_nchw_float(np.ascontiguousarray(photo))
    low, high = spec.input_range
    return np.ascontiguousarray(tensor * np.float32(high - low) + np.float32(low))


def serving_feeds(spec: ModelSpec) -> dict[str, Array]:
    """Every input at the shape the server receives (batch 1): the spec's own validation
    inputs where it has them (several inputs, or vectors), else the photo."""
    if spec.feeds is not None:
        return spec.feeds(1, False)
    return {spec.inputs[0].name: serving_input(spec)}


def to_image(tensor: Array, value_range: tuple[float, float]) -> Array:
    low, high = value_range
    unit = np.clip((tensor.astype(np.float64) - low) / (high - low), 0.0, 1.0)
    image: Array = np.round(unit * 255.0).astype(np.uint8)
    return image


def check_openvino_f32(
    spec: ModelSpec,
    path: Path,
    feeds: dict[str, Array],
    expected: dict[str, Array],
    label: str,
) -> list[CheckResult]:
    """OpenVINO FP32 against PyTorch on the validation batch, within the FP32 tolerance."""
    run = runner(path, OV_F32, spec.batching.intra_op_threads)
    outputs = run(feeds)
    actual = dict(zip([t.name for t in spec.outputs], outputs, strict=False))
    return compare_outputs(spec.name, "openvino_f32_vs_pytorch", label, expected, actual, spec.atol)


def check_openvino_bf16(spec: ModelSpec, path: Path) -> CheckResult:
    """BF16 against FP32, both OpenVINO, as 8-bit images of a real photo."""
    assert spec.output_range is not None
    feeds = serving_feeds(spec)
    threads = spec.batching.intra_op_threads
    reference = runner(path, OV_F32, threads)(feeds)[0]
    bf16 = runner(path, OV_BF16, threads)(feeds)[0]
    value = psnr(to_image(bf16, spec.output_range), to_image(reference, spec.output_range))
    return CheckResult(
        "openvino_bf16_vs_f32",
        spec.outputs[0].name,
        "psnr_db",
        value,
        MIN_BF16_PSNR_DB,
        value >= MIN_BF16_PSNR_DB,
        f"serving inputs {[list(v.shape) for v in feeds.values()]}",
    )


def time_candidates(path: Path, candidates: list[Candidate], spec: ModelSpec) -> dict[str, float]:
    """Median milliseconds of one call at the serving shape for each candidate. Runs alternate
    between candidates, so a change in the machine's load hits them all alike."""
    feeds = serving_feeds(spec)
    runs = {c.label: runner(path, c, spec.batching.intra_op_threads) for c in candidates}
    for run in runs.values():
        run(feeds)  # warm-up: first calls allocate and tune
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(TIMED_RUNS):
        for label, run in runs.items():
            started = time.perf_counter()
            run(feeds)
            times[label].append((time.perf_counter() - started) * 1000.0)
    return {label: sorted(values)[len(values) // 2] for label, values in times.items()}


def choose_runtime(
    spec: ModelSpec,
    path: Path,
    feeds: dict[str, Array],
    expected: dict[str, Array],
    label: str,
) -> CpuChoice:
    """Check and time every candidate; return the fastest that passed."""
    eligible = [ORT_F32]
    notes: list[str] = []
    try:
        checks = check_openvino_f32(spec, path, feeds, expected, label)
    except Exception as error:  # OpenVINO cannot run this graph: ONNX Runtime serves it
        checks = []
        notes.append(f"openvino refused: it failed to run the model ({error})".splitlines()[0])
    if checks and all(check.passed for check in checks):
        eligible.append(OV_F32)
        capabilities = cpu_capabilities()
        if spec.output_range is None:
            notes.append("bf16 not considered: the output is not an image")
        elif "BF16" not in capabilities:
            notes.append(f"bf16 not considered: this CPU has no BF16 support ({capabilities})")
        else:
            bf16 = check_openvino_bf16(spec, path)
            checks.append(bf16)
            if bf16.passed:
                eligible.append(OV_BF16)
            else:
                notes.append(f"bf16 refused: {bf16.value:.1f} dB < {MIN_BF16_PSNR_DB:g} dB")
    elif checks:
        notes.append("openvino refused: FP32 outputs beyond the model's tolerance")
    timings = time_candidates(path, eligible, spec)
    return pick(eligible, timings, checks, notes)


def pick(
    eligible: list[Candidate],
    timings: dict[str, float],
    checks: list[CheckResult],
    notes: list[str],
) -> CpuChoice:
    """The fastest eligible candidate; OpenVINO only with a lead of MIN_SPEEDUP over ORT."""
    reference = timings[ORT_F32.label]
    best = min(eligible, key=lambda c: timings[c.label])
    speedup = reference / timings[best.label]
    if best != ORT_F32 and speedup < MIN_SPEEDUP:
        reason = (
            f"{best.label} was only {speedup:.2f}x onnxruntime_f32 (below {MIN_SPEEDUP}x): "
            "onnxruntime_f32 kept"
        )
        best = ORT_F32
    elif best == ORT_F32:
        reason = "onnxruntime_f32 was the fastest validated candidate"
    else:
        reason = f"{best.label} was {speedup:.2f}x onnxruntime_f32 and passed its checks"
    return CpuChoice(best.runtime, best.precision, reason, timings, checks, notes)


def unmeasured(reason: str) -> CpuChoice:
    """ONNX Runtime FP32 without measuring (tiny test variants: timings would mean nothing)."""
    return CpuChoice(ORT_F32.runtime, ORT_F32.precision, reason)
