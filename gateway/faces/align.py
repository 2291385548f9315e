"""Five-point face alignment: templates, the similarity transform onto them, and the warps.

Conventions follow facexlib (the helper GFPGAN uses), read from its `face_restoration_helper.py`:
the FFHQ 512 template below (`template_3points=False`, which GFPGANer uses), the transform from
`cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)` and the crop made with
`cv2.warpAffine(..., borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))`. facexlib works
on BGR images, so its border gray is B=135, G=133, R=132; our images are RGB, so the same gray is
written (132, 133, 135) here.

Affines are 2×3 float64 matrices mapping image (x, y) to crop (x, y), pixel centres at integer
coordinates (OpenCV's convention).
"""

from __future__ import annotations

from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

Affine = npt.NDArray[np.float64]
Points = npt.NDArray[np.float32]
AffineMethod = Literal["lmeds", "umeyama"]


def read_only_points(rows: list[list[float]]) -> Points:
    points = np.array(rows, dtype=np.float32)
    points.flags.writeable = False
    return points


FFHQ_SIZE: Final = 512
# Left eye, right eye, nose, left and right mouth corners of an FFHQ-aligned 512×512 face.
FFHQ_TEMPLATE_512: Final[Points] = read_only_points(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
# The border gray facexlib fills outside the image with, as RGB (see the module docstring).
FFHQ_BORDER_RGB: Final = (132, 133, 135)

ARCFACE_SIZE: Final = 112
# insightface's `arcface_dst`, the reference points of its 112×112 recognition crops.
ARCFACE_TEMPLATE_112: Final[Points] = read_only_points(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def ffhq_template(size: int = FFHQ_SIZE) -> Points:
    """The FFHQ template scaled to a size×size crop (facexlib: template · size/512)."""
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    return (FFHQ_TEMPLATE_512 * np.float32(size / FFHQ_SIZE)).astype(np.float32)


def arcface_template(size: int = ARCFACE_SIZE) -> Points:
    """insightface's `estimate_norm` targets: a multiple of 112 scales by size/112; a multiple of
    128 scales by size/128 and shifts x by 8·ratio (the 112 face centred in a 128 crop)."""
    if size > 0 and size % ARCFACE_SIZE == 0:
        ratio, shift_x = size / ARCFACE_SIZE, 0.0
    elif size > 0 and size % 128 == 0:
        ratio = size / 128
        shift_x = 8.0 * ratio
    else:
        raise ValueError(f"ArcFace crops must be a multiple of 112 or 128 pixels, got {size}")
    template = ARCFACE_TEMPLATE_112.astype(np.float64) * ratio
    template[:, 0] += shift_x
    return template.astype(np.float32)


def estimate_affine(
    landmarks: npt.ArrayLike, template: npt.ArrayLike, *, method: AffineMethod = "lmeds"
) -> Affine:
    """The similarity transform (rotation, uniform scale, translation) taking landmarks onto
    the template, as a 2×3 matrix.

    "lmeds" is what facexlib calls (OpenCV's least-median fit, robust to one bad landmark;
    OpenCV seeds its sampler per call, so the result is deterministic); it falls back to the
    closed-form least-squares "umeyama" fit if OpenCV finds no model.
    """
    src = as_points(landmarks)
    dst = as_points(template)
    if src.shape != dst.shape:
        raise ValueError(f"landmarks {src.shape} and template {dst.shape} differ in shape")
    if method == "lmeds":
        affine, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if affine is not None and np.isfinite(affine).all():
            return np.asarray(affine, dtype=np.float64)
    elif method != "umeyama":
        raise ValueError(f"unknown method {method!r}")
    return umeyama_similarity(src, dst)


def umeyama_similarity(src: npt.ArrayLike, dst: npt.ArrayLike) -> Affine:
    """Least-squares similarity without reflection (Umeyama 1991) from src to dst points."""
    source = np.asarray(src, dtype=np.float64)
    target = np.asarray(dst, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    variance = float((source_centred**2).sum() / len(source))
    if variance <= 1e-12:
        raise ValueError("landmarks are degenerate (all points coincide)")
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0  # the best rotation, not a mirror image
    rotation = u @ np.diag(signs) @ vt
    scale = float((singular * signs).sum() / variance)
    affine = np.empty((2, 3), dtype=np.float64)
    affine[:, :2] = scale * rotation
    affine[:, 2] = target_mean - scale * rotation @ source_mean
    return affine


def invert_affine(affine: Affine) -> Affine:
    """The 2×3 matrix of the inverse transform."""
    return np.asarray(cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64)), np.float64)


def transform_points(points: npt.ArrayLike, affine: Affine) -> npt.NDArray[np.float64]:
    """Apply a 2×3 affine to N×2 points."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    matrix = np.asarray(affine, dtype=np.float64)
    return np.asarray(array @ matrix[:, :2].T + matrix[:, 2], dtype=np.float64)


def warp_face(
    image: npt.NDArray[np.uint8],
    affine: Affine,
    size: int = FFHQ_SIZE,
    *,
    border_value: tuple[int, int, int] = FFHQ_BORDER_RGB,
) -> npt.NDArray[np.uint8]:
    """Cut the aligned size×size face out of an H×W×3 image: bilinear, constant gray border."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3 uint8, got {image.shape} {image.dtype}")
    crop = cv2.warpAffine(
        image,
        np.asarray(affine, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )
    return np.asarray(crop, dtype=np.uint8)


def as_points(points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < 2:
        raise ValueError(f"points must be N×2 with N ≥ 2, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("points must be finite")
    return array
