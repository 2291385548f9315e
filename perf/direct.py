"""Triton direct: the same work as a gateway request, from the benchmark process over gRPC,
without HTTP, jobs, storage or image coding. The gateway's overhead is measured against these.

Upscaling goes through `clients.FacetTritonClient.upscale_image`, which tiles on the client
with the gateway's own pipeline (triton_core.upscale) and the same geometry and batch limit.
Restoration runs the gateway's restore pipeline (gateway/faces) with two small sessions calling
the served detector and the GFPGAN uint8 ensemble, in chunks of its batch limit, as the
gateway's sessions do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from perf.loadgen import Request, RequestFactory
from perf.measure import Recorder

Image = npt.NDArray[np.uint8]


def upscale_factory(
    url: str,
    model: str,
    images: Sequence[Image],
    recorder: Recorder,
    *,
    tile: int,
    tile_pad: int,
    pre_pad: int,
) -> RequestFactory:
    """One decoded photo per request, upscaled ×4 through `upscale_<model>`."""
    from clients.triton_grpc import FacetTritonClient

    def factory() -> Request:
        client = FacetTritonClient(url, timeout_s=900.0)

        def request(index: int) -> object:
            started = time.perf_counter()
            out = client.upscale_image(
                images[index % len(images)],
                model=model,
                outscale=4,
                tile=tile,
                tile_pad=tile_pad,
                pre_pad=pre_pad,
            )
            recorder.note("pipeline_ms", 1000.0 * (time.perf_counter() - started))
            return out

        return request

    return factory


class DirectDetector:
    """The gateway's FaceDetector protocol over the served detector (face_detect_mtcnn)."""

    def __init__(self, client: Any, model: str, recorder: Recorder) -> None:
        self._client = client
        self.model = model
        self._recorder = recorder

    async def detect(self, rgb: Image, *, min_score: float) -> list[Any]:
        from gateway.faces.triton_sessions import DETECTOR_OUTPUTS
        from gateway.faces.types import Face

        started = time.perf_counter()
        inputs = {
            "image": np.ascontiguousarray(rgb),
            "score_threshold": np.array([min_score], np.float32),
        }
        outputs = await asyncio.to_thread(
            self._client.infer, self.model, inputs, list(DETECTOR_OUTPUTS)
        )
        self._recorder.note("detect_ms", 1000.0 * (time.perf_counter() - started))
        return [
            Face(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), score=s, landmarks=p)
            for b, s, p in zip(
                outputs["boxes"], outputs["scores"], outputs["landmarks"], strict=True
            )
        ]


class DirectRestorer:
    """The gateway's FaceRestorer protocol over the GFPGAN uint8 ensemble, in chunks of its
    config's batch limit (triton_core.batching, as the gateway sends them)."""

    def __init__(self, client: Any, ensemble: str, recorder: Recorder) -> None:
        self._client = client
        self.ensemble = ensemble
        self._recorder = recorder

    async def restore(self, faces: Image) -> Image:
        from triton_core.batching import run_in_batches

        started = time.perf_counter()
        facts = await asyncio.to_thread(self._client.model_facts, self.ensemble)
        restored = await run_in_batches(self._batch, faces, facts.max_batch_size)
        self._recorder.note("faces_ms", 1000.0 * (time.perf_counter() - started))
        return restored

    async def _batch(self, faces: Image) -> Image:
        from gateway.faces.triton_sessions import RESTORER_INPUT, RESTORER_OUTPUT

        outputs = await asyncio.to_thread(
            self._client.infer, self.ensemble, {RESTORER_INPUT: faces}, [RESTORER_OUTPUT]
        )
        answer: Image = outputs[RESTORER_OUTPUT].astype(np.uint8, copy=False)
        return answer


def restore_factory(
    url: str,
    detector: str,
    ensemble: str,
    image: Image,
    recorder: Recorder,
    *,
    upscale: int,
    weight: float,
    min_score: float,
) -> RequestFactory:
    """The decoded group photo through the gateway's pipeline with Triton sessions."""
    from clients.triton_grpc import FacetTritonClient
    from gateway.faces.restore_pipeline import restore_image

    def factory() -> Request:
        client = FacetTritonClient(url, timeout_s=900.0)
        sessions = (
            DirectDetector(client, detector, recorder),
            DirectRestorer(client, ensemble, recorder),
        )

        def request(index: int) -> object:
            started = time.perf_counter()
            outcome = asyncio.run(
                restore_image(image, *sessions, weight=weight, upscale=upscale, min_score=min_score)
            )
            recorder.note("pipeline_ms", 1000.0 * (time.perf_counter() - started))
            recorder.note("faces", outcome.restored_count)
            return outcome.image

        return request

    return factory
