"""Real photos used as validation inputs: shipped by scikit-image, so no download is needed."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from skimage import data

Array = npt.NDArray[Any]


def astronaut() -> Array:
    """The 512×512 RGB uint8 astronaut photo (public domain, NASA)."""
    return np.ascontiguousarray(data.astronaut())  # type: ignore[no-untyped-call]


def astronaut_crop(size: int = 64) -> Array:
    """A face-centred crop: real texture and skin, the content SR models are judged on."""
    image = astronaut()
    top, left = 60, 150  # around the face and helmet rim
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def astronaut_resized(size: int) -> Array:
    """The whole photo shrunk with area averaging, so full-size models run in seconds on a CPU."""
    return cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def to_nchw_float(image: Array) -> Array:
    """HWC uint8 RGB → 1×3×H×W float32 in [0, 1], the layout every SR model takes."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


def to_hwc_uint8(tensor: Array) -> Array:
    """1×3×H×W float in [0, 1] → HWC uint8, rounding as upstream's post-processing does."""
    clipped = np.clip(tensor[0], 0.0, 1.0).transpose(1, 2, 0)
    return np.ascontiguousarray(np.round(clipped * 255.0).astype(np.uint8))


def psnr(a: Array, b: Array, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(peak * peak / mse))
