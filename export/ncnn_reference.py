"""Run the original ncnn model files on the CPU: an independent reference for converted weights.

If our RRDBNet with converted weights agrees with ncnn's own engine on the untouched files, both
the architecture and the weight mapping are right; neither side shares code with the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ncnn
import numpy as np
import numpy.typing as npt

from export.errors import ConversionError
from export.ncnn_weights import find_io_blobs, read_ncnn_param


def run_ncnn_reference(
    param: Path, bin: Path, image: npt.NDArray[np.uint8], threads: int = 2
) -> npt.NDArray[np.float32]:
    """HWC RGB uint8 → the model's HWC RGB float32 output, clipped to [0, 1].

    The input is fed as RGB scaled by 1/255, as realesrgan-ncnn-vulkan does.
    """
    check_image(image)
    input_blob, output_blob = find_io_blobs(read_ncnn_param(param))
    net = load_float32_net(param, bin, threads)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    # ncnn.Mat borrows the array's memory without holding a reference to it: `chw` must stay
    # bound until extraction ends, or ncnn reads freed memory and returns garbage silently.
    mat = ncnn.Mat(chw)
    extractor = net.create_extractor()
    if extractor.input(input_blob, mat) != 0:
        raise ConversionError(f"{param}: ncnn rejected input blob {input_blob!r}")
    status, output = extractor.extract(output_blob)
    if status != 0:
        raise ConversionError(f"{param}: ncnn failed to compute {output_blob!r} (status {status})")
    # Copy out before the extractor and net go away, since the Mat may borrow their memory.
    result = np.array(output, dtype=np.float32, copy=True)
    return np.ascontiguousarray(np.clip(result, 0.0, 1.0).transpose(1, 2, 0))


def check_image(image: npt.NDArray[np.uint8]) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HWC RGB uint8 image, got {image.dtype} {image.shape}")


def load_float32_net(param: Path, bin: Path, threads: int) -> Any:
    """An ncnn.Net computing in plain float32 on the CPU, so it is a reference, not a rival."""
    net = ncnn.Net()
    options = net.opt
    options.use_vulkan_compute = False
    options.num_threads = threads
    # ncnn defaults to fp16 storage and arithmetic wherever the CPU supports them, which would
    # blur any disagreement with PyTorch; the stored weights are fp16-rounded either way.
    for flag in (
        "use_fp16_storage",
        "use_fp16_arithmetic",
        "use_fp16_packed",
        "use_bf16_storage",
        "use_bf16_packed",
        "use_int8_inference",
    ):
        setattr(options, flag, False)
    if net.load_param(str(param)) != 0:
        raise ConversionError(f"{param}: ncnn could not load the .param")
    if net.load_model(str(bin)) != 0:
        raise ConversionError(f"{bin}: ncnn could not load the .bin")
    return net
