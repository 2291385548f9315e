"""SCRFD-10G face detection (insightface buffalo_l `det_10g.onnx`) and `face_detect_scrfd`, the
Triton model that letterboxes, runs it through BLS and decodes (model_repository/
face_detect_scrfd/1/).

Official weights: det_10g.onnx itself (16,923,827 bytes, sha256 pinned), installed with its
outputs renamed by position to the names below when they differ; insightface's pretrained
models are for non-commercial research use only. Otherwise: the re-implementation in
export/arch/scrfd.py with seeded random weights, exported with the same I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.arch.scrfd import STRIDES, scrfd_10g, scrfd_tiny
from export.samples import astronaut
from export.spec import Array, Batching, ModelSpec, OfficialWeights, StateDict, TensorSpec
from export.triton_config import PythonModelSpec

LICENCE = (
    "insightface pretrained models: non-commercial research purposes only "
    "(https://github.com/deepinsight/insightface#license); code MIT"
)
INPUT_SIZE = 640
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES)
_WIDTH = {"score": 1, "bbox": 4, "kps": 10}


@dataclass(frozen=True)
class UnbatchedModelSpec(ModelSpec):
    """A model served with max_batch_size 0: `dims` are the whole tensor. The export keeps
    every -1 axis dynamic, and the input's first axis too (validation runs a batch of 2)."""

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes: dict[str, dict[int, str]] = {}
        for tensor in (*self.inputs, *self.outputs):
            named = {i: f"{tensor.name}_d{i}" for i, d in enumerate(tensor.dims) if d < 0}
            if tensor in self.inputs:
                named[0] = "batch"
            axes[tensor.name] = named
        return axes


def _sample() -> Array:
    """The astronaut photo letterboxed to a 640 square, as the served model feeds it."""
    photo = astronaut()
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    canvas[: photo.shape[0], : photo.shape[1]] = photo[:INPUT_SIZE, :INPUT_SIZE]
    return canvas


def _tiny_sample() -> Array:
    return np.ascontiguousarray(astronaut()[100:260, 120:280])


def _synthetic_adjust(state: StateDict) -> StateDict:
    """BatchNorm statistics a trained model could have (variance ≥ 1, unit gain); the generic
    synthetic draw gives negative variances, which would make every output NaN."""
    adjusted = dict(state)
    for key, value in state.items():
        if key.endswith("running_var"):
            adjusted[key] = 1.0 + value.abs()
        elif key.endswith("running_mean"):
            adjusted[key] = value * 0.0
        elif key.endswith(".scale"):
            adjusted[key] = value * 0.0 + 1.0
    for key in [k for k in state if k.endswith("num_batches_tracked")]:
        adjusted[key] = state[key]
    # A BatchNorm's affine weight is 1-D and drawn at ~0.01: bring it back to ~1.
    for key, value in state.items():
        prefix = key.removesuffix(".weight")
        if key.endswith(".weight") and f"{prefix}.running_var" in state:
            adjusted[key] = 1.0 + value
    return adjusted


SCRFD_10G = UnbatchedModelSpec(
    name="scrfd_10g",
    description="SCRFD-10G face detector (insightface det_10g.onnx layout): 3 strides × "
    "(scores, box distances, 5-point keypoints), 2 anchors per location",
    build=scrfd_10g,
    build_tiny=scrfd_tiny,
    # Batch fixed at 1 as in det_10g.onnx ([1, 3, ?, ?]); the outputs have no batch axis.
    inputs=(TensorSpec("input.1", "TYPE_FP32", (1, 3, -1, -1)),),
    outputs=tuple(TensorSpec(n, "TYPE_FP32", (-1, _WIDTH[n.split("_")[0]])) for n in OUTPUT_NAMES),
    opset=17,
    opset_reason="convolutions, pooling, nearest Resize, reshape and sigmoid only; 17 is the "
    "TensorRT 8.6 floor",
    atol=1e-4,
    batching=Batching(
        max_batch_size=0,
        preferred_batch_sizes=(),
        max_queue_delay_us=0,
        max_queue_size=0,
        instances=1,
        intra_op_threads=2,
    ),
    sample=_sample,
    tiny_sample=_tiny_sample,
    official=OfficialWeights(
        filename="det_10g.onnx",
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        licence=LICENCE,
        state_keys=(),
    ),
    # (x − 127.5) / 128 on RGB.
    input_range=(-127.5 / 128.0, 127.5 / 128.0),
    synthetic_adjust=_synthetic_adjust,
    synthetic_licence="n/a (seeded random weights, not a trained model)",
    # Measured by the install on the 2-core AVX2 EPYC: a 640² input, 2 threads, ONNX Runtime
    # FP32 209 ms vs OpenVINO FP32 270 ms: ONNX Runtime stays (no BF16: not an image output).
    cpu_plan=("onnxruntime", "f32"),
)

LANDMARK_ORDER = (
    "left_eye,right_eye,nose,mouth_left,mouth_right as the network orders them (insightface "
    "order; with synthetic weights the points carry no meaning)"
)
BOX_FORMAT = (
    "x1,y1,x2,y2 in original image pixels, not clipped; landmarks x,y pixels; sorted by score"
)

FACE_DETECT_SCRFD = PythonModelSpec(
    name="face_detect_scrfd",
    shared_sources=("detector_io.py",),
    description="SCRFD face detector: letterbox to 640 → scrfd_10g via BLS → decode → NMS",
    inputs=(
        TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),  # RGB
        TensorSpec("score_threshold", "TYPE_FP32", (1,)),
    ),
    outputs=(
        TensorSpec("boxes", "TYPE_FP32", (-1, 4)),
        TensorSpec("scores", "TYPE_FP32", (-1,)),
        TensorSpec("landmarks", "TYPE_FP32", (-1, 5, 2)),
    ),
    optional_inputs=("score_threshold",),
    parameters=(
        ("net_model", SCRFD_10G.name),
        ("input_size", str(INPUT_SIZE)),
        ("score_threshold", "0.5"),
        ("nms_threshold", "0.4"),
        ("max_image_side", "4096"),
        ("landmark_order", LANDMARK_ORDER),
        ("box_format", BOX_FORMAT),
    ),
    instances=2,
    max_queue_size=16,
    requires=(SCRFD_10G.name,),
)
