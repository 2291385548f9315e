"""The server as the `gfpp` layer sees it: a session that lists the served models with their
weight facts, finds faces, and restores an image. Two implementations: `rest_session` (the
gateway does the work) and `grpc_session` (Triton does, this process aligns and pastes); unit
tests plug in a fake.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from clients.gfpp.io.images import ImageInput
from clients.gfpp.names import DEFAULT_DETECTOR, DEFAULT_MIN_SCORE
from clients.gfpp.server import FacetServer, resolve_server

UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ServedModel:
    """One model as the server describes it. `ready` None: the server did not say (the
    gateway reports readiness only for models it has used); `version` None likewise."""

    name: str
    entry_point: str
    installed: bool
    ready: bool | None
    version: str | None
    weights: str  # official, package, synthetic, none, unknown, or several joined by "+"
    licence: str | None
    synthetic: bool
    warning: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    """One face in image pixels: box (x1, y1, x2, y2), score, five (x, y) landmarks in the
    order left eye, right eye, nose, mouth left, mouth right ("left" as seen in the image)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def eye_distance(self) -> float:
        (left_x, left_y), (right_x, right_y) = self.landmarks[0], self.landmarks[1]
        return math.hypot(right_x - left_x, right_y - left_y)


@dataclass(frozen=True)
class RestoreRequest:
    """The gateway's /restore options, which both transports honour the same way."""

    version: str = "1.4"
    upscale: int = 2
    weight: float = 0.5
    only_center_face: bool = False
    background: bool = False
    detector: str = DEFAULT_DETECTOR
    min_score: float = DEFAULT_MIN_SCORE
    want_faces: bool = False


@dataclass(frozen=True)
class Restored:
    """A restored image (RGB, with its alpha when the input had one) and what was done."""

    rgb: UInt8Array
    alpha: UInt8Array | None
    faces_detected: int
    faces_restored: int
    warning: str | None
    timings: dict[str, float]
    restoration_id: str | None = None
    background: str | None = None
    # Aligned 512² input crops and their restorations after the weight blend (RGB).
    cropped_faces: list[UInt8Array] = field(default_factory=list)
    restored_faces: list[UInt8Array] = field(default_factory=list)


class FacetSession(Protocol):
    server: FacetServer

    def served_models(self) -> dict[str, ServedModel]:
        """Every model of `names.served_models()` the server reports, by model name."""
        ...

    def detect(self, rgb: UInt8Array, *, detector: str, min_score: float) -> list[Detection]:
        """The faces Triton's detector finds in an H×W×3 RGB image, best score first."""
        ...

    def restore(self, image: ImageInput, request: RestoreRequest) -> Restored: ...

    def close(self) -> None: ...


SessionSource = FacetServer | str | FacetSession | None


def new_session(server: FacetServer) -> FacetSession:
    """A session over the transport `server.via` names (the client libraries load here)."""
    if server.via == "grpc":
        from clients.gfpp.grpc_session import GrpcSession

        return GrpcSession(server)
    from clients.gfpp.rest_session import RestSession

    return RestSession(server)


@contextmanager
def open_session(source: SessionSource) -> Iterator[FacetSession]:
    """A session for one call: made from a server (closed afterwards), or one given as is."""
    if source is not None and not isinstance(source, FacetServer | str):
        yield source
        return
    session = new_session(resolve_server(source))
    try:
        yield session
    finally:
        session.close()
