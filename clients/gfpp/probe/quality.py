"""Blur and noise estimates, computed honestly and cheaply on the client.

- Blur: the variance of the Laplacian (Pech-Pacheco et al., 2000) of the grey image; low means
  few sharp edges. It depends on scale, so faces are measured after resizing their box to
  FACE_PROBE_SIZE² (one number comparable across photos), the whole image at its own size.
- Noise: Immerkær's estimate (1996, "Fast Noise Variance Estimation"): the image filtered with
  the difference of two Laplacians, a mask that cancels smooth gradients, whose response to
  Gaussian noise of σ has standard deviation 6σ. We take the median absolute response over the
  image (σ = median / (0.6745·6)) instead of Immerkær's mean, so edges and texture, the
  outliers, weigh little; per colour channel, averaged: σ in 8-bit levels.

NIQE and BRISQUE need models fitted on natural images that Facet does not ship; they stay None
rather than being approximated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

FACE_PROBE_SIZE: Final = 128  # about the size detectors see a face at; small enough to be quick
IMMERKAER_MASK: Final = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
MASK_NOISE_GAIN: Final = 6.0  # sqrt of the sum of the mask's squared entries (36)
MEDIAN_OF_ABS_GAUSSIAN: Final = 0.6745  # median |N(0, 1)|
MIN_FACE_PIXELS: Final = 4  # a box thinner than this holds no measurable detail


def probe_quality(rgb: UInt8Array, face_boxes: Sequence[Box]) -> dict[str, float | None]:
    """The plan's `quality`: blur of the image and of its faces, noise, and the two no-reference
    scores this client does not compute (None)."""
    grey = to_grey(rgb)
    face_blur = [b for b in (face_blur_variance(grey, box) for box in face_boxes) if b is not None]
    return {
        "niqe": None,
        "brisque": None,
        "blur_laplacian_var": round(laplacian_variance(grey), 2),
        "face_blur_laplacian_var": round(float(np.median(face_blur)), 2) if face_blur else None,
        "noise_sigma": round(noise_sigma(rgb), 2),
    }


def to_grey(rgb: UInt8Array) -> npt.NDArray[np.float64]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.float64)


def laplacian_variance(grey: npt.NDArray[np.float64]) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var())


def face_blur_variance(grey: npt.NDArray[np.float64], box: Box) -> float | None:
    """Laplacian variance of the face box resized to FACE_PROBE_SIZE²; None if off-image."""
    height, width = grey.shape
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 - x1 < MIN_FACE_PIXELS or y2 - y1 < MIN_FACE_PIXELS:
        return None
    crop = grey[y1:y2, x1:x2]
    shrinking = crop.shape[0] * crop.shape[1] > FACE_PROBE_SIZE * FACE_PROBE_SIZE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(crop, (FACE_PROBE_SIZE, FACE_PROBE_SIZE), interpolation=interpolation)
    return laplacian_variance(np.asarray(resized, dtype=np.float64))


def noise_sigma(rgb: UInt8Array) -> float:
    """Immerkær's noise σ with a median, per channel, averaged (see the module docstring)."""
    if min(rgb.shape[:2]) < 3:
        return 0.0
    return float(np.mean([channel_noise_sigma(rgb[..., c]) for c in range(rgb.shape[2])]))


def channel_noise_sigma(channel: UInt8Array) -> float:
    response = cv2.filter2D(channel.astype(np.float64), cv2.CV_64F, IMMERKAER_MASK)
    interior = np.abs(response[1:-1, 1:-1])  # the border's response depends on the padding
    return float(np.median(interior) / (MEDIAN_OF_ABS_GAUSSIAN * MASK_NOISE_GAIN))
