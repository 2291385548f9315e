"""A detected face and the two model sessions the restoration pipeline needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

LANDMARK_NAMES: Final = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)
class Face:
    """One detection in image pixels.

    `box` is (x1, y1, x2, y2); `landmarks` is a read-only float32 [5, 2] array of (x, y) points in
    LANDMARK_NAMES order, "left" meaning the image's left (the subject's right eye), as RetinaFace,
    MTCNN and the FFHQ/ArcFace templates order them. Equality is identity (arrays do not compare
    as booleans).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: npt.NDArray[np.float32] = field(repr=False)

    def __post_init__(self) -> None:
        points = np.array(self.landmarks, dtype=np.float32)
        if points.shape != (5, 2):
            raise ValueError(f"landmarks must be [5, 2], got {points.shape}")
        if not np.isfinite(points).all() or not all(math.isfinite(v) for v in self.box):
            raise ValueError("face box and landmarks must be finite")
        points.flags.writeable = False
        object.__setattr__(self, "landmarks", points)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))


class FaceDetector(Protocol):
    """Finds faces with five landmarks in an H×W×3 uint8 RGB image."""

    async def detect(self, rgb: npt.NDArray[np.uint8], *, min_score: float) -> list[Face]: ...


class FaceRestorer(Protocol):
    """Restores aligned faces: N×512×512×3 uint8 RGB in, the same shape out."""

    async def restore(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]: ...
