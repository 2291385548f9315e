"""Face chips for dlib's face recognition ResNet (dlib_resnet_v1), cut from our 5 landmarks.

dlib trains and runs its descriptor network on chips from `get_face_chip_details(shape, 150,
0.25)` (dlib/image_transforms/interpolation.h): a least-squares similarity transform taking
the face's landmarks onto a fixed mean face. For a 68-point shape that mean face is a table of
(x, y) positions in a unit square, and a chip point is (padding + v) / (1 + 2·padding) · size.
Our detectors give other landmarks (eye centres, nose tip, mouth corners) than dlib's 5-point
predictor (eye corners and the base of the nose), so the template below is taken from that
68-point table, at the points that name what our landmarks are (iBUG numbering, 0-based):

- left eye centre (image left): mean of points 36-41, the subject's right eye outline;
- right eye centre: mean of points 42-47;
- nose tip: point 30;
- mouth corners: points 48 (image left) and 54.

At 150 px with padding 0.25 that gives eyes at (47.5, 46.6) and (100.5, 46.6), the nose at
(74.0, 76.6) and the mouth corners at (50.4, 103.0) and (97.6, 103.0). Cross-check with the
5-point branch of the same function: its eye corners average to eye centres at (47.7, 47.1)
and (100.3, 47.1), within half a pixel.

The chip is cut the way dlib's extract_image_chip does it: the transform is fitted by least
squares (dlib's find_similarity_transform, i.e. Umeyama), a face more than twice the chip's
size is first halved in a Gaussian pyramid (bilinear sampling alone would alias), bilinear
sampling, black outside the image.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from gateway.faces.align import (
    Affine,
    Points,
    estimate_affine,
    read_only_points,
    warp_face,
)

DLIB_CHIP_SIZE: Final = 150
DLIB_CHIP_PADDING: Final = 0.25
# Entries of dlib's 68-point mean face (get_face_chip_details' mean_face_shape_x/_y, which
# start at point 17), for the points our landmarks correspond to.
MEAN_FACE_EYE_LEFT: Final = (  # points 36..41
    (0.121737, 0.216423),
    (0.187122, 0.178758),
    (0.265825, 0.179852),
    (0.334606, 0.231733),
    (0.260918, 0.245099),
    (0.182743, 0.244077),
)
MEAN_FACE_EYE_RIGHT: Final = (  # points 42..47
    (0.645647, 0.231733),
    (0.714428, 0.179852),
    (0.793132, 0.178758),
    (0.858516, 0.216423),
    (0.79751, 0.244077),
    (0.719335, 0.245099),
)
MEAN_FACE_NOSE_TIP: Final = (0.490127, 0.515625)  # point 30
MEAN_FACE_MOUTH_LEFT: Final = (0.254149, 0.780233)  # point 48
MEAN_FACE_MOUTH_RIGHT: Final = (0.726104, 0.780233)  # point 54
# dlib zero-fills what lies outside the image.
DLIB_BORDER_RGB: Final = (0, 0, 0)
# Above this downscale (chip side / face side < 1/2) dlib samples from a halved pyramid level.
PYRAMID_STEP: Final = 0.5


def mean_face_points() -> npt.NDArray[np.float64]:
    """Our 5 landmarks' positions on dlib's unit-square mean face."""
    return np.array(
        [
            np.mean(MEAN_FACE_EYE_LEFT, axis=0),
            np.mean(MEAN_FACE_EYE_RIGHT, axis=0),
            MEAN_FACE_NOSE_TIP,
            MEAN_FACE_MOUTH_LEFT,
            MEAN_FACE_MOUTH_RIGHT,
        ],
        dtype=np.float64,
    )


def dlib_chip_template(size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> Points:
    """Where our landmarks fall in a size×size chip of get_face_chip_details(…, size, padding)."""
    if size < 1 or padding < 0:
        raise ValueError(f"need size ≥ 1 and padding ≥ 0, got {size}, {padding}")
    chip = (padding + mean_face_points()) / (2 * padding + 1) * size
    return read_only_points(chip.tolist())


DLIB_TEMPLATE_150: Final[Points] = dlib_chip_template()


def embedding_affine(landmarks: npt.ArrayLike, size: int = DLIB_CHIP_SIZE) -> Affine:
    """The image → chip similarity for one face, fitted by least squares as dlib fits it."""
    return estimate_affine(landmarks, dlib_chip_template(size), method="umeyama")


def affine_scale(affine: Affine) -> float:
    return float(np.sqrt(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:, :2]))))


def cut_embedding_chip(
    image: npt.NDArray[np.uint8], landmarks: npt.ArrayLike, size: int = DLIB_CHIP_SIZE
) -> npt.NDArray[np.uint8]:
    """The face's size×size RGB chip for dlib_resnet_v1 (image: H×W×3 uint8 RGB)."""
    affine = embedding_affine(landmarks, size)
    level = image
    # cv2.pyrDown's pixel (x, y) is the source's (2x, 2y), so each halving doubles the linear
    # part of the affine and keeps its translation.
    while affine_scale(affine) < PYRAMID_STEP and min(level.shape[:2]) >= 2:
        level = np.asarray(cv2.pyrDown(level), dtype=np.uint8)
        affine = np.concatenate([affine[:, :2] * 2.0, affine[:, 2:]], axis=1)
    return warp_face(level, affine, size, border_value=DLIB_BORDER_RGB)


def cut_embedding_chips(
    image: npt.NDArray[np.uint8], landmarks: npt.ArrayLike, size: int = DLIB_CHIP_SIZE
) -> npt.NDArray[np.uint8]:
    """Every face's chip (landmarks N×5×2) as an N×size×size×3 uint8 batch."""
    faces = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    chips = [cut_embedding_chip(image, face, size) for face in faces]
    if not chips:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(chips)
