"""A detected face and the model sessions the restoration and face-swap pipelines need.

Every session takes all the items it is given in one call and splits them by its model's batch
limit itself, so pipelines hand over everything they have at once.
"""

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


class FaceEmbedder(Protocol):
    """Identity embeddings of ArcFace-aligned faces: N×112×112×3 uint8 RGB in, N×512 float32
    out, as the network gives them (not normalised; callers normalise)."""

    async def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...


class LatentMaker(Protocol):
    """The swapper's source latents: N×512 float32 embeddings in, N×512 float32 latents out
    (L2-normalise, multiply by the swapper's emap matrix, L2-normalise)."""

    async def latent(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


class FaceSwapper(Protocol):
    """Swaps identities into aligned faces: N×128×128×3 uint8 RGB targets and one N×512 float32
    latent each in, N×128×128×3 uint8 RGB out."""

    async def swap(
        self, targets: npt.NDArray[np.uint8], latents: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]: ...
