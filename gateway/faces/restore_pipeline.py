"""GFPGAN-style face restoration of one image: detect → align → restore (batched) → paste back.

The steps follow GFPGANer.enhance with facexlib's helper: faces whose eyes are closer than 5 px
are skipped (`eye_dist_threshold=5`), `only_center_face` keeps the face whose box centre is
nearest the image centre, each face is cut out at 512×512 on the FFHQ template, restored, and
pasted onto the background upscaled by `upscale` (a background enhancer such as Real-ESRGAN, or a
Lanczos resize). Unlike upstream, which runs the network once per face, all crops of an image go
to the restorer together; the restorer session splits them by its model's batch limit.

`weight` is this gateway's blend of restored and original crops, restored·weight +
crop·(1 − weight), applied before paste-back. (GFPGANer passes its `weight` argument into the
network, where the v1.3/v1.4 "clean" architecture ignores it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.faces.align import FFHQ_SIZE, FFHQ_TEMPLATE_512, Affine, estimate_affine, warp_face
from gateway.faces.paste import paste_back
from gateway.faces.types import Face, FaceDetector, FaceRestorer

Image = npt.NDArray[np.uint8]
# An async background enhancer: (H×W×3 RGB, factor s) → (H·s)×(W·s)×3 RGB; other sizes are
# resized to that with Lanczos, as GFPGANer does with its bg_upsampler's output.
BackgroundUpscaler = Callable[[Image, int], Awaitable[Image]]
BackgroundKind = Literal["unchanged", "resized", "enhanced"]

DEFAULT_WEIGHT: Final = 0.5  # inference_gfpgan.py's --weight default
DEFAULT_UPSCALE: Final = 2  # inference_gfpgan.py's --upscale default
MAX_UPSCALE: Final = 4
DEFAULT_MIN_SCORE: Final = 0.9  # facexlib's RetinaFace uses 0.97; other detectors score lower
DEFAULT_MAX_FACES: Final = 20  # each face is one 512² model input; bounds a request's cost
MIN_EYE_DISTANCE: Final = 5.0  # GFPGANer: eye_dist_threshold=5 pixels


@dataclass(frozen=True)
class RestoreOutcome:
    """The restored image and what was done to get it."""

    image: Image
    faces: list[Face]  # restored and pasted, in paste order
    detected_count: int  # all detections, before the eye-distance/centre/max-faces filters
    background: BackgroundKind
    upscale: int

    @property
    def restored_count(self) -> int:
        return len(self.faces)


async def restore_image(
    rgb: Image,
    detector: FaceDetector,
    restorer: FaceRestorer,
    *,
    weight: float = DEFAULT_WEIGHT,
    upscale: int = DEFAULT_UPSCALE,
    background: BackgroundUpscaler | None = None,
    only_center_face: bool = False,
    min_score: float = DEFAULT_MIN_SCORE,
    max_faces: int = DEFAULT_MAX_FACES,
) -> RestoreOutcome:
    """Restore every face of an H×W×3 uint8 RGB image; the result is (H·upscale)×(W·upscale).

    With upscale=1 and no background enhancer, pixels outside every face's mask are returned
    byte-identical (with no face at all, `image` is `rgb` itself, not a copy). Raises ValueError
    for bad arguments and UpstreamError when a model answers with the wrong shape; the
    detector's, restorer's and enhancer's own errors propagate unchanged.
    """
    check_arguments(rgb, weight, upscale, max_faces)
    selection = FaceSelection(min_score, only_center_face, max_faces)
    # The background (often a whole-image super-resolution) runs while faces are restored.
    # Errors propagate as themselves (not as an ExceptionGroup) for the gateway's error mapping.
    base = asyncio.create_task(make_background(rgb, upscale, background))
    try:
        restored = await detect_and_restore(rgb, detector, restorer, selection, weight)
        backdrop, kind = await base
    finally:
        base.cancel()  # no-op once it has finished
        await asyncio.gather(base, return_exceptions=True)
    image = backdrop
    if restored.faces:
        image = await asyncio.to_thread(
            paste_back, backdrop, restored.crops, restored.affines, upscale=upscale
        )
    return RestoreOutcome(
        image=image,
        faces=restored.faces,
        detected_count=restored.detected_count,
        background=kind,
        upscale=upscale,
    )


@dataclass(frozen=True)
class FaceSelection:
    min_score: float
    only_center_face: bool
    max_faces: int


@dataclass(frozen=True)
class RestoredFaces:
    detected_count: int
    faces: list[Face]
    affines: list[Affine]
    crops: Image  # N×512×512×3, restored and weight-blended


async def detect_and_restore(
    rgb: Image,
    detector: FaceDetector,
    restorer: FaceRestorer,
    selection: FaceSelection,
    weight: float,
) -> RestoredFaces:
    detected = await detector.detect(rgb, min_score=selection.min_score)
    faces = select_faces(
        detected,
        rgb.shape,
        min_score=selection.min_score,
        only_center_face=selection.only_center_face,
        max_faces=selection.max_faces,
    )
    affines, crops = await restore_crops(rgb, faces, restorer, weight)
    return RestoredFaces(len(detected), faces, affines, crops)


def check_arguments(rgb: Image, weight: float, upscale: int, max_faces: int) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within 0..1, got {weight}")
    if not 1 <= upscale <= MAX_UPSCALE:
        raise ValueError(f"upscale must be within 1..{MAX_UPSCALE}, got {upscale}")
    if max_faces < 1:
        raise ValueError("max_faces must be at least 1")


def select_faces(
    detected: Sequence[Face],
    shape: tuple[int, ...],
    *,
    min_score: float,
    only_center_face: bool,
    max_faces: int,
) -> list[Face]:
    """Drop low scores and tiny faces, then keep the centre face or the `max_faces` largest.

    The kept faces stay in detection order, which is the order they are pasted in.
    """
    faces = [
        face
        for face in detected
        if face.score >= min_score and face.eye_distance >= MIN_EYE_DISTANCE
    ]
    if only_center_face and faces:
        return [center_face(faces, shape)]
    if len(faces) <= max_faces:
        return faces
    largest = sorted(range(len(faces)), key=lambda i: faces[i].area, reverse=True)[:max_faces]
    return [faces[i] for i in sorted(largest)]


def center_face(faces: Sequence[Face], shape: tuple[int, ...]) -> Face:
    """The face whose box centre is nearest the image centre (facexlib's get_center_face)."""
    middle = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda face: float(np.linalg.norm(np.array(face.center) - middle)))


async def make_background(
    rgb: Image, upscale: int, enhancer: BackgroundUpscaler | None
) -> tuple[Image, BackgroundKind]:
    height, width = rgb.shape[:2]
    size = (width * upscale, height * upscale)
    if enhancer is not None:
        enhanced = await enhancer(rgb, upscale)
        if enhanced.dtype != np.uint8 or enhanced.ndim != 3 or enhanced.shape[2] != 3:
            raise UpstreamError(f"background upscaler returned {enhanced.shape} {enhanced.dtype}")
        return await asyncio.to_thread(resize_lanczos, enhanced, size), "enhanced"
    if upscale == 1:
        return rgb, "unchanged"
    return await asyncio.to_thread(resize_lanczos, rgb, size), "resized"


def resize_lanczos(image: Image, size: tuple[int, int]) -> Image:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4), dtype=np.uint8)


async def restore_crops(
    rgb: Image, faces: Sequence[Face], restorer: FaceRestorer, weight: float
) -> tuple[list[Affine], Image]:
    """Align every face, restore the crops and blend them with `weight`."""
    if not faces:
        return [], np.empty((0, FFHQ_SIZE, FFHQ_SIZE, 3), dtype=np.uint8)
    affines = [estimate_affine(face.landmarks, FFHQ_TEMPLATE_512) for face in faces]
    crops = await asyncio.to_thread(crop_faces, rgb, affines)
    restored = await restorer.restore(crops)
    if restored.shape != crops.shape or restored.dtype != np.uint8:
        raise UpstreamError(
            f"face restorer returned {restored.shape} {restored.dtype}; "
            f"expected {crops.shape} uint8"
        )
    return affines, await asyncio.to_thread(blend_weight, restored, crops, weight)


def crop_faces(rgb: Image, affines: Sequence[Affine]) -> Image:
    return np.stack([warp_face(rgb, affine, FFHQ_SIZE) for affine in affines])


def blend_weight(restored: Image, crops: Image, weight: float) -> Image:
    """restored·weight + crops·(1 − weight), rounded; the ends return one input exactly."""
    if weight >= 1.0:
        return restored
    if weight <= 0.0:
        return crops
    mixed = restored.astype(np.float32) * weight + crops.astype(np.float32) * (1.0 - weight)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
