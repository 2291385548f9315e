"""Faces found by Triton's detector models over gRPC: the one way to detect without restoring,
since the gateway has no detection-only route.

The detectors (`face_detect_mtcnn`, `face_detect_scrfd`) take one H×W×3 uint8 RGB image and a
score threshold and answer boxes, scores and five landmarks per face, best score first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from clients.errors import BadRequestError, ServerError
from clients.gfpp.names import DETECTORS
from clients.gfpp.session import Detection

if TYPE_CHECKING:
    from clients.triton_grpc import FacetTritonClient

DETECTOR_OUTPUTS: Final = ("boxes", "scores", "landmarks")


def detector_model(detector: str) -> str:
    """The Triton model of a detector's API name (`mtcnn` → `face_detect_mtcnn`)."""
    model = DETECTORS.get(detector)
    if model is None:
        raise BadRequestError(
            f"face detector {detector!r} is not one Facet serves; choose one of: "
            f"{', '.join(sorted(DETECTORS))}"
        )
    return model


def detect_faces(
    client: FacetTritonClient, rgb: npt.NDArray[np.uint8], *, detector: str, min_score: float
) -> list[Detection]:
    if not 0.0 < min_score <= 1.0:
        raise ValueError(f"face_detector_score must be in (0, 1], got {min_score}")
    model = detector_model(detector)
    outputs = client.infer(
        model,
        {
            "image": np.ascontiguousarray(rgb, dtype=np.uint8),
            "score_threshold": np.array([min_score], np.float32),
        },
        list(DETECTOR_OUTPUTS),
    )
    return detections_from(outputs, model)


def detections_from(outputs: dict[str, npt.NDArray[np.float32]], model: str) -> list[Detection]:
    boxes, scores, landmarks = (np.asarray(outputs[name]) for name in DETECTOR_OUTPUTS)
    if boxes.shape[1:] != (4,) or landmarks.shape[1:] != (5, 2) or len(scores) != len(boxes):
        raise ServerError(
            f"model '{model}' answered boxes {boxes.shape}, scores {scores.shape}, "
            f"landmarks {landmarks.shape}; expected N×4, N and N×5×2"
        )
    return [
        Detection(
            box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            score=float(score),
            landmarks=tuple((float(x), float(y)) for x, y in points),
        )
        for box, score, points in zip(boxes, scores, landmarks, strict=True)
    ]
