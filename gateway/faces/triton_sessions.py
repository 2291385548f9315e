"""The face sessions backed by Triton: the MTCNN cascade model and the GFPGAN uint8 ensemble."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.faces.types import Face
from gateway.triton_client import TritonClient

DETECTORS = {"mtcnn": "face_detect_mtcnn", "scrfd": "face_detect_scrfd"}
# A cascade model has no weights of its own: the manifest of the nets it calls says what it runs.
WEIGHTS_OF = {"face_detect_mtcnn": "mtcnn_onet", "face_detect_scrfd": "scrfd_10g"}
RESTORERS = {"1.4": "gfpgan_v1_4"}


class TritonFaceDetector:
    def __init__(self, client: TritonClient, model: str = DETECTORS["mtcnn"]) -> None:
        self._client = client
        self.model = model

    async def detect(self, rgb: npt.NDArray[np.uint8], *, min_score: float) -> list[Face]:
        outputs = await self._client.infer(
            self.model,
            {
                "image": np.ascontiguousarray(rgb),
                "score_threshold": np.array([min_score], np.float32),
            },
            ["boxes", "scores", "landmarks"],
        )
        boxes, scores, landmarks = outputs["boxes"], outputs["scores"], outputs["landmarks"]
        return [
            Face(box=tuple(float(v) for v in box), score=float(score), landmarks=points)  # type: ignore[arg-type]
            for box, score, points in zip(boxes, scores, landmarks, strict=True)
        ]


class TritonFaceRestorer:
    def __init__(self, client: TritonClient, model: str = RESTORERS["1.4"]) -> None:
        self._client = client
        self.model = model
        self.ensemble = f"restore_{model}"

    async def restore(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        outputs = await self._client.infer(self.ensemble, {"face": faces}, ["restored_face"])
        return outputs["restored_face"].astype(np.uint8, copy=False)
