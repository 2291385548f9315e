"""COCO-80 objects from Triton's `detect_objects` (NanoDet, its decode and NMS inside Triton)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.triton_client import TritonClient

MODEL = "detect_objects"
# The tensors the session sends and reads; tests/unit/test_model_catalog.py checks them.
INPUTS = {"image": "UINT8", "score_threshold": "FP32"}
OUTPUTS = ("boxes", "scores", "label_names")


@dataclass(frozen=True)
class Detection:
    label: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


class TritonObjectDetector:
    """One image per call (the model takes any size, so it has no batch axis); the images of
    a batch are sent concurrently and the BLS model's two instances overlap them."""

    def __init__(self, client: TritonClient, model: str = MODEL) -> None:
        self._client = client
        self.model = model

    async def detect(
        self, images: Sequence[npt.NDArray[np.uint8]], *, min_score: float
    ) -> list[list[Detection]]:
        return list(await asyncio.gather(*(self._one(image, min_score) for image in images)))

    async def _one(self, image: npt.NDArray[np.uint8], min_score: float) -> list[Detection]:
        outputs = await self._client.infer(
            self.model,
            {
                "image": np.ascontiguousarray(image),
                "score_threshold": np.array([min_score], np.float32),
            },
            list(OUTPUTS),
        )
        return [
            Detection(_text(name), float(score), tuple(float(v) for v in box))  # type: ignore[arg-type]
            for box, score, name in zip(
                outputs["boxes"], outputs["scores"], outputs["label_names"], strict=True
            )
        ]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def object_names(detections: Sequence[Detection]) -> list[str]:
    """The seed's `objects`: each label once, best-scoring first."""
    return list(dict.fromkeys(d.label for d in sorted(detections, key=lambda d: -d.confidence)))
