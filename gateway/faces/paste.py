"""Paste restored faces back into the (upscaled) image through a soft mask.

The mask is facexlib's square one (`paste_faces_to_input_image` without a face-parsing model):
a white face-sized square warped back with the inverse affine, eroded by 2·upscale pixels to drop
the interpolated black rim, then eroded again by 2·w_edge and Gaussian-blurred with a
(2·w_edge + 1)² kernel, where w_edge = ⌊√(eroded mask area)⌋ // 20 scales the feathering with the
face. Differences from upstream, on purpose:

- The inverse affine maps crop pixels to the upscaled image as x' = s·x + (s − 1)/2, which is
  where `cv2.resize` and Real-ESRGAN put the centre of input pixel x; upstream adds s/2, half an
  output pixel off.
- Blended values are rounded, not truncated, and only pixels whose soft mask is above zero are
  written, so everything outside every mask stays byte-identical to the background.
- Work is done in the face's bounding box (with enough zero margin that erosion and blur give the
  same result as on the whole canvas) instead of on full-size float canvases per face.
- A face so small that w_edge is 0 gets no extra erosion or blur (OpenCV would silently use a
  3×3 kernel for upstream's empty one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gateway.faces.align import Affine, invert_affine, transform_points

Mask = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Region:
    """A half-open rectangle [x0, x1) × [y0, y1) of the output image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order OpenCV wants."""
        return self.x1 - self.x0, self.y1 - self.y0


def paste_back(
    background: npt.NDArray[np.uint8],
    restored_faces: npt.NDArray[np.uint8] | Sequence[npt.NDArray[np.uint8]],
    affines: Sequence[Affine],
    *,
    upscale: int,
    opacity: float = 1.0,
) -> npt.NDArray[np.uint8]:
    """Blend each restored face into a copy of `background`, in order (later faces on top).

    `background` is the input image already upscaled by `upscale` (H·s × W·s × 3 uint8);
    `affines` are the crop affines from *input* image coordinates to each face crop, as
    `estimate_affine` made them. `opacity` scales every mask: FaceFusion's enhancer blend, which
    mixes the pasted frame with the frame it was pasted onto. Pixels outside every face's soft
    mask are returned unchanged.
    """
    check_background(background)
    if len(restored_faces) != len(affines):
        raise ValueError(f"{len(restored_faces)} faces for {len(affines)} affines")
    if upscale < 1:
        raise ValueError(f"upscale must be at least 1, got {upscale}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within 0..1, got {opacity}")
    output = background.copy()
    for face, affine in zip(restored_faces, affines, strict=True):
        paste_face(output, face, affine, upscale=upscale, opacity=opacity)
    return output


def paste_face(
    output: npt.NDArray[np.uint8],
    face: npt.NDArray[np.uint8],
    affine: Affine,
    *,
    upscale: int,
    opacity: float = 1.0,
) -> None:
    """Blend one square face crop into `output` in place."""
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"face must be S×S×3 uint8, got {face.shape} {face.dtype}")
    if face.shape[0] != face.shape[1]:
        raise ValueError(f"face crops are square, got {face.shape[:2]}")
    face_size = face.shape[0]
    located = locate_face(affine, face_size, output.shape, upscale)
    if located is None:
        return
    region, local = located
    warped = np.asarray(
        cv2.warpAffine(
            face, local, region.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        ),
        dtype=np.uint8,
    )
    eroded, soft = soft_face_mask(local, face_size, region.size, upscale)
    target = output[region.y0 : region.y1, region.x0 : region.x1]
    blend(target, warped, eroded, soft if opacity == 1.0 else soft * np.float32(opacity))


def coverage(
    shape: tuple[int, ...], affines: Sequence[Affine], *, upscale: int, face_size: int
) -> Mask:
    """The largest soft-mask value any face has at each pixel of an output of `shape` (H, W, …).

    paste_back writes exactly the pixels where this is above zero.
    """
    union = np.zeros(shape[:2], dtype=np.float32)
    for affine in affines:
        located = locate_face(affine, face_size, shape, upscale)
        if located is None:
            continue
        region, local = located
        _, soft = soft_face_mask(local, face_size, region.size, upscale)
        window = union[region.y0 : region.y1, region.x0 : region.x1]
        np.maximum(window, soft, out=window)
    return union


def locate_face(
    affine: Affine,
    face_size: int,
    shape: tuple[int, ...],
    upscale: int,
    *,
    margin: int | None = None,
) -> tuple[Region, Affine] | None:
    """The output region a face touches and the crop → region affine; None if off-image.

    `margin` widens the region by that many pixels; None leaves the room the soft face mask's
    erosion and blur need (see `face_region`). A mask made in crop coordinates needs none.
    """
    inverse = paste_affine(affine, upscale)
    region = face_region(inverse, face_size, shape, upscale, margin=margin)
    if region is None:
        return None
    local = inverse.copy()
    local[:, 2] -= (region.x0, region.y0)
    return region, local


def paste_affine(affine: Affine, upscale: int) -> Affine:
    """Crop coordinates → upscaled-image coordinates (pixel centres, see the module docstring)."""
    inverse = invert_affine(affine) * upscale
    inverse[:, 2] += (upscale - 1) / 2
    return inverse


def face_region(
    inverse: Affine,
    face_size: int,
    image_shape: tuple[int, ...],
    upscale: int,
    *,
    margin: int | None = None,
) -> Region | None:
    """The part of the output the face can touch, plus a zero margin for erosion and blur.

    Outside the warped square (with a 1-pixel bilinear fringe) the mask is zero; a margin wider
    than either erosion kernel and than the blur radius keeps border effects of the cut-out
    identical to those of the whole canvas. None when the face lies entirely outside the image.
    """
    corners = transform_points(
        [[-1, -1], [face_size, -1], [-1, face_size], [face_size, face_size]], inverse
    )
    low, high = corners.min(axis=0), corners.max(axis=0)
    if margin is None:
        width, height = high - low
        edge_bound = int(math.sqrt(max(width * height, 0.0))) // 20
        margin = 2 * max(upscale, edge_bound) + 2
    image_h, image_w = image_shape[0], image_shape[1]
    x0 = max(0, math.floor(low[0]) - margin)
    y0 = max(0, math.floor(low[1]) - margin)
    x1 = min(image_w, math.ceil(high[0]) + margin + 1)
    y1 = min(image_h, math.ceil(high[1]) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return Region(x0, y0, x1, y1)


def soft_face_mask(
    inverse: Affine, face_size: int, size: tuple[int, int], upscale: int
) -> tuple[Mask, Mask]:
    """The eroded hard mask (weights the pasted face) and the feathered blend mask, both H×W."""
    white = np.ones((face_size, face_size), dtype=np.float32)
    mask = cv2.warpAffine(white, inverse, size, flags=cv2.INTER_LINEAR)
    rim = 2 * upscale
    eroded = np.asarray(cv2.erode(mask, np.ones((rim, rim), np.uint8)), dtype=np.float32)
    w_edge = int(float(eroded.sum()) ** 0.5) // 20
    if w_edge == 0:
        return eroded, eroded
    center = cv2.erode(eroded, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    blur = 2 * w_edge + 1
    soft = cv2.GaussianBlur(center, (blur, blur), 0)
    return eroded, np.asarray(soft, dtype=np.float32)


def blend(
    target: npt.NDArray[np.uint8],
    warped: npt.NDArray[np.uint8],
    eroded: Mask | None,
    soft: Mask,
) -> None:
    """target ← soft·(eroded·warped) + (1 − soft)·target where soft > 0, rounded; in place.

    `eroded` None weights the warped face by 1 (a mask whose edge is already inside the crop).
    """
    touched = soft > 0
    if not touched.any():
        return
    alpha = soft[..., None]
    pasted = warped.astype(np.float32)
    if eroded is not None:
        pasted *= eroded[..., None]
    mixed = alpha * pasted + (1.0 - alpha) * target.astype(np.float32)
    result = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    np.copyto(target, result, where=touched[..., None])


def check_background(background: npt.NDArray[np.uint8]) -> None:
    if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3:
        raise ValueError(f"background must be H×W×3 uint8, got {background.shape}")
