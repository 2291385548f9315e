"""The face sessions backed by Triton: the MTCNN cascade model and the GFPGAN uint8 ensemble."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.faces.types import Face
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches

# The API's names for the served models (the seed's `face_detector_model` and `version`).
DETECTORS = {"mtcnn": "face_detect_mtcnn", "scrfd": "face_detect_scrfd"}
RESTORERS = {"1.4": "gfpgan_v1_4"}
RESTORE_ENSEMBLE_PREFIX = "restore_"
# The tensors each session sends and reads; a unit test checks them against the committed configs.
DETECTOR_INPUTS = {"image": "UINT8", "score_threshold": "FP32"}
DETECTOR_OUTPUTS = ("boxes", "scores", "landmarks")
RESTORER_INPUT = "face"
RESTORER_OUTPUT = "restored_face"


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
            list(DETECTOR_OUTPUTS),
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
        self.ensemble = f"{RESTORE_ENSEMBLE_PREFIX}{model}"

    async def restore(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Any number of aligned 512² crops, sent in chunks of the ensemble's batch limit."""
        limit = (await self._client.model_facts(self.ensemble)).max_batch_size
        try:
            return await run_in_batches(self._restore_batch, faces, limit)
        except ValueError as exc:  # a batch answered with the wrong number of faces
            raise UpstreamError(f"model '{self.ensemble}': {exc}") from exc

    async def _restore_batch(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        outputs = await self._client.infer(
            self.ensemble, {RESTORER_INPUT: faces}, [RESTORER_OUTPUT]
        )
        return outputs[RESTORER_OUTPUT].astype(np.uint8, copy=False)
