"""Full-reference quality of a restored image against its original: PSNR, SSIM and the seed's
`analysis` block derived from them.

SSIM follows Wang et al. (2004): an 11×11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03,
L = 255, population (not sample) statistics, computed per RGB channel and averaged, over the
pixels whose whole window lies inside the image (what scikit-image returns with
`gaussian_weights=True, use_sample_covariance=False, channel_axis=-1`).

Both measure fidelity to the original, not how good the result looks: a restoration that adds
plausible detail the original never had scores lower than one that changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest

Image = npt.NDArray[np.uint8]

DATA_RANGE: Final = 255.0
SSIM_SIGMA: Final = 1.5
SSIM_WINDOW: Final = 11  # ⌈3.5σ⌉ on each side, as scikit-image truncates its Gaussian
SSIM_K1: Final = 0.01
SSIM_K2: Final = 0.03
# The quality score maps PSNR 20..40 dB and SSIM 0.5..1.0 linearly onto 0..1 each (below is 0,
# above is 1) and averages them onto 0..10: 20 dB is a visibly different picture, 40 dB is
# hard to tell from the original.
PSNR_FLOOR_DB: Final = 20.0
PSNR_CEILING_DB: Final = 40.0
SSIM_FLOOR: Final = 0.5
UNAVAILABLE: Final = "unavailable"


@dataclass(frozen=True)
class QualityReport:
    """How close `restored` is to `original`.

    `psnr_db` is infinite for identical images; `resized_original` says the original was resized
    (bicubic) to the restored size before comparing, as an upscaled result is larger.
    """

    psnr_db: float
    ssim: float
    original_size: tuple[int, int]  # (width, height)
    compared_size: tuple[int, int]
    resized_original: bool

    @property
    def quality_score(self) -> float:
        """0..10, one decimal: the mean of PSNR and SSIM each mapped onto 0..1 (see above)."""
        psnr_part = clamp01((self.psnr_db - PSNR_FLOOR_DB) / (PSNR_CEILING_DB - PSNR_FLOOR_DB))
        ssim_part = clamp01((self.ssim - SSIM_FLOOR) / (1.0 - SSIM_FLOOR))
        return round(5.0 * (psnr_part + ssim_part), 1)

    def metrics(self) -> dict[str, float | None]:
        """PSNR (None when the images are identical: infinite) and SSIM, JSON-safe."""
        psnr = round(self.psnr_db, 4) if math.isfinite(self.psnr_db) else None
        return {"psnr": psnr, "ssim": round(self.ssim, 6)}


def compare_images(original: Image, restored: Image) -> QualityReport:
    """PSNR and SSIM of `restored` against `original` (both H×W×3 uint8 RGB).

    Raises BadRequest when either image is smaller than the 11×11 SSIM window.
    """
    for name, image in (("original", original), ("restored", restored)):
        check_rgb(image, name)
    height, width = restored.shape[:2]
    if min(height, width) < SSIM_WINDOW:
        raise BadRequest(f"images must be at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels to compare")
    resized = original.shape[:2] != restored.shape[:2]
    reference = original
    if resized:
        reference = np.asarray(
            cv2.resize(original, (width, height), interpolation=cv2.INTER_CUBIC), dtype=np.uint8
        )
    return QualityReport(
        psnr_db=psnr(reference, restored),
        ssim=ssim(reference, restored),
        original_size=(original.shape[1], original.shape[0]),
        compared_size=(width, height),
        resized_original=resized,
    )


def psnr(a: Image, b: Image) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf when identical."""
    check_same_shape(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


def ssim(a: Image, b: Image) -> float:
    """Mean structural similarity of two H×W or H×W×C uint8 images (channels averaged)."""
    check_same_shape(a, b)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels")
    x = a.astype(np.float64).reshape(*a.shape[:2], -1)
    y = b.astype(np.float64).reshape(*b.shape[:2], -1)
    return float(np.mean([ssim_map(x[..., c], y[..., c]).mean() for c in range(x.shape[2])]))


def ssim_map(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-pixel SSIM of two float planes, cropped to where the window fits inside."""
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu_x, mu_y = gaussian(x), gaussian(y)
    var_x = gaussian(x * x) - mu_x * mu_x
    var_y = gaussian(y * y) - mu_y * mu_y
    cov = gaussian(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    pad = SSIM_WINDOW // 2
    return np.asarray((numerator / denominator)[pad:-pad, pad:-pad], dtype=np.float64)


def gaussian(plane: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    blurred = cv2.GaussianBlur(
        plane, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT
    )
    return np.asarray(blurred, dtype=np.float64)


def analysis_block(
    report: QualityReport, *, identity_similarity: float | None = None
) -> dict[str, float | str]:
    """The seed's `analysis` object, from what was actually measured.

    `quality_score` comes from PSNR and SSIM. `identity_preservation` needs a face-recognition
    similarity (e.g. ArcFace cosine between original and restored faces) and is "unavailable"
    without one; `texture_realism` needs a perceptual model this gateway does not run, so it is
    always "unavailable".
    """
    identity = UNAVAILABLE if identity_similarity is None else grade(identity_similarity)
    return {
        "quality_score": report.quality_score,
        "identity_preservation": identity,
        "texture_realism": UNAVAILABLE,
    }


def grade(similarity: float) -> str:
    """Words for a face-embedding cosine similarity (1 = same embedding). The bands are this
    gateway's convention, not a calibrated verification threshold."""
    if similarity >= 0.8:
        return "excellent"
    if similarity >= 0.65:
        return "good"
    if similarity >= 0.5:
        return "fair"
    return "poor"


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def check_rgb(image: Image, name: str) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be H×W×3 uint8, got {image.shape} {image.dtype}")


def check_same_shape(a: Image, b: Image) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
