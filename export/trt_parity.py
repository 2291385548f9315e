"""FP16 parity of a TensorRT plan with ONNX Runtime FP32 on the export's own sample, and the
record of the plan that goes into the model's manifest.json (its `tensorrt` entry).

The measure is the worst element's error on the output's own scale, max |plan − ONNX Runtime|
over max |ONNX Runtime|: an element-wise relative error explodes wherever the reference
crosses zero, and an absolute bound means different things for images in [0, 1], descriptors
of ~0.1 and transformer features in the tens. FP16 keeps 11 significant bits (a rounding of at
most 4.9e-4 of each value), and the errors of a deep network add up, so each family's bound is
what its use can afford rather than a rounding figure. None of the bounds has been measured on
a GPU yet (the machine this was written on has none): the first GPU run's recorded errors are
the numbers to tighten them with.

Imports the standard library and numpy only (Python 3.10 too): `python -m export.trt_build`
runs this in NVIDIA's stock tritonserver image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import TensorRTError
from export.hashing import sha256_of
from export.trt_commands import Array

TOLERANCE_METRIC = "max_rel_error"


@dataclass(frozen=True)
class Fp16Tolerance:
    family: str
    max_rel_error: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "max_rel_error": self.max_rel_error, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fp16Tolerance:
        return cls(str(data["family"]), float(data["max_rel_error"]), str(data["reason"]))


SUPER_RESOLUTION = Fp16Tolerance(
    "super_resolution",
    # Images in [0, 1] (largest value ≈ 1): 4 8-bit levels at the worst pixel, invisible in a
    # 4× upscale. RRDBNet is ~350 convolutions deep, the deepest convnet here, so its FP16
    # rounding accumulates most; SRVGGNet shares the bound.
    4 / 255,
    "4 8-bit levels of a [0, 1] image at the worst pixel; RRDBNet's ~350 convolutions "
    "accumulate FP16 rounding",
)
FACE_RESTORATION = Fp16Tolerance(
    "face_restoration",
    # Faces in [-1, 1] (largest |value| ≈ 1): 8/255 is 4 8-bit levels of the 2-wide range. The
    # StyleGAN2 decoder renormalises each of its 15 style convolutions by an rsqrt, in FP16 too.
    8 / 255,
    "4 8-bit levels of a [-1, 1] image at the worst pixel; 15 demodulated style convolutions",
)
FACE_DESCRIPTOR = Fp16Tolerance(
    "face_descriptor",
    # dlib's elements are ≤ ~0.3 and two people are told apart at 0.6 Euclidean; 1 % of the
    # largest element on all 128 elements at once moves a distance by ≤ 0.034. ArcFace's
    # threshold (0.5 cosine distance) is coarser still.
    1e-2,
    "1 % of the largest element moves a dlib distance by ≤ 0.034 of its 0.6 threshold",
)
TRANSFORMER = Fp16Tolerance(
    "transformer",
    # Softmax, GELU and LayerNorm (over 384-768 features with a few large activations) lose the
    # most in FP16; their outputs are compared by cosine (CLIP, MiniLM) or decoded (BLIP's
    # image features), where 2 % of the largest element is far below what changes a ranking
    # or a caption token.
    2e-2,
    "softmax/LayerNorm in FP16; embeddings are compared by cosine, features decoded",
)
FAMILY_OF: dict[str, Fp16Tolerance] = {
    "realesrgan_x4plus": SUPER_RESOLUTION,
    "realesr_general_x4v3": SUPER_RESOLUTION,
    "gfpgan_v1_4": FACE_RESTORATION,
    "dlib_resnet_v1": FACE_DESCRIPTOR,
    "arcface_w600k_r50": FACE_DESCRIPTOR,
    "minilm_l6_v2": TRANSFORMER,
    "clip_vit_b32_visual": TRANSFORMER,
    "clip_vit_b32_textual": TRANSFORMER,
    "blip_vision": TRANSFORMER,
}


def tolerance_for(model: str) -> Fp16Tolerance:
    try:
        return FAMILY_OF[model]
    except KeyError:
        raise TensorRTError(
            f"{model}: no FP16 tolerance is stated for it; add its family to FAMILY_OF in "
            "export/trt_parity.py"
        ) from None


@dataclass(frozen=True)
class OutputParity:
    output: str
    max_abs_error: float
    max_rel_error: float  # max |Δ| / max |reference|
    mean_abs_error: float
    tolerance: float  # on max_rel_error
    passed: bool
    detail: str = ""


def _failed(name: str, tolerance: float, detail: str) -> OutputParity:
    nan = float("nan")
    return OutputParity(name, nan, nan, nan, tolerance, False, detail)


def compare_plan(
    reference: Mapping[str, Array], plan: Mapping[str, Array], tolerance: Fp16Tolerance
) -> list[OutputParity]:
    """Every output of the reference against the plan's output of the same name."""
    limit = tolerance.max_rel_error
    results = []
    for name, want in reference.items():
        got = plan.get(name)
        if got is None:
            results.append(_failed(name, limit, f"the plan gave no output '{name}'"))
            continue
        if got.shape != want.shape:
            results.append(_failed(name, limit, f"shape {got.shape} != {want.shape}"))
            continue
        ours, theirs = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if not np.isfinite(ours).all():
            results.append(_failed(name, limit, "the plan's output holds NaN or ∞"))
            continue
        delta = np.abs(ours - theirs)
        worst, scale = float(delta.max(initial=0.0)), float(np.abs(theirs).max(initial=0.0))
        relative = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
        results.append(
            OutputParity(name, worst, relative, float(delta.mean()), limit, relative <= limit)
        )
    return results


@dataclass(frozen=True)
class PlanRecord:
    """The manifest's `tensorrt` entry: which plan, built how, on what, and how close it came."""

    plan_file: str  # relative to the model's folder
    plan_sha256: str | None  # None: deleted (failed parity)
    onnx_sha256: str
    precision: str
    profile: dict[str, dict[str, list[int]]]
    optimum_source: str
    tensorrt_version: str | None
    gpu: str | None
    build_time_s: float
    built_at: str
    reference: str
    sample: str
    family: str
    tolerance_metric: str
    tolerance: float
    tolerance_reason: str
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(result.passed for result in self.outputs)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def is_current(
    record: Mapping[str, object],
    model_dir: Path,
    onnx_sha256: str,
    profile: Mapping[str, Mapping[str, list[int]]],
    tensorrt_version: str | None,
    gpu: str | None,
) -> bool:
    """Whether the recorded plan is the one a build now would make: it passed, from this ONNX
    file with this profile, on this TensorRT and GPU (where known), and is still there."""
    plan_file, plan_sha256 = record.get("plan_file"), record.get("plan_sha256")
    if record.get("passed") is not True or not isinstance(plan_file, str) or not plan_sha256:
        return False
    same_build = (
        record.get("onnx_sha256") == onnx_sha256
        and record.get("profile") == profile
        and (tensorrt_version is None or record.get("tensorrt_version") == tensorrt_version)
        and (gpu is None or record.get("gpu") == gpu)
    )
    plan = model_dir / plan_file
    return same_build and plan.is_file() and sha256_of(plan) == plan_sha256
