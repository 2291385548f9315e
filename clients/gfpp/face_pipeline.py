"""The gateway's face restoration pipeline (detect → align → restore in batches → blend →
paste back), run in this process with Triton's models as its sessions.

The pipeline lives in gateway/faces/, whose modules import only numpy and OpenCV; running it
here, rather than a second copy, keeps the gRPC transport's image equal to the gateway's.
This module is the only one of `clients.gfpp` that imports the gateway package, and only when
a restoration runs over gRPC; tests/unit/test_gfpp_imports.py checks that it loads no web
framework and no settings library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from clients.errors import ServerError
from clients.gfpp.detect import detect_faces
from clients.gfpp.names import BACKGROUND_UPSCALER, RESTORER_INPUT, RESTORER_OUTPUT
from clients.gfpp.session import RestoreRequest
from clients.triton_grpc import FacetTritonClient, _run_sync
from gateway.errors import FacetError
from gateway.faces.restore_pipeline import blend_weight, restore_image
from gateway.faces.types import Face
from triton_core.batching import batch_slices

UInt8Array = npt.NDArray[np.uint8]
T = TypeVar("T")


@dataclass
class Timings:
    """Seconds spent waiting on each model, summed over calls (they overlap in wall time)."""

    spent: dict[str, float] = field(default_factory=dict)

    async def run(self, name: str, call: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return await asyncio.to_thread(call)
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.monotonic() - started


class TritonDetector:
    def __init__(self, client: FacetTritonClient, detector: str, timings: Timings) -> None:
        self._client, self._detector, self._timings = client, detector, timings

    async def detect(self, rgb: UInt8Array, *, min_score: float) -> list[Face]:
        found = await self._timings.run(
            "detect_s",
            lambda: detect_faces(self._client, rgb, detector=self._detector, min_score=min_score),
        )
        return [Face(box=d.box, score=d.score, landmarks=np.array(d.landmarks)) for d in found]


class TritonRestorer:
    """The GFPGAN ensemble in chunks of its batch limit; keeps what it saw when asked to."""

    def __init__(
        self, client: FacetTritonClient, ensemble: str, timings: Timings, *, keep: bool
    ) -> None:
        self._client, self._ensemble, self._timings, self._keep = client, ensemble, timings, keep
        self.crops: list[UInt8Array] = []
        self.outputs: list[UInt8Array] = []

    async def restore(self, faces: UInt8Array) -> UInt8Array:
        restored = await self._timings.run("restore_s", lambda: self._restore_all(faces))
        if self._keep:
            self.crops.extend(faces)
            self.outputs.extend(restored)
        return restored

    def _restore_all(self, faces: UInt8Array) -> UInt8Array:
        limit = self._client.model_facts(self._ensemble).max_batch_size
        parts = [
            self._client.infer(self._ensemble, {RESTORER_INPUT: faces[part]}, [RESTORER_OUTPUT])
            for part in batch_slices(len(faces), limit)
        ]
        return np.concatenate([p[RESTORER_OUTPUT] for p in parts]).astype(np.uint8, copy=False)


class TritonBackground:
    """Real-ESRGAN on the whole image (×4, or ×4 then an area resize for ×2), tiled here."""

    def __init__(self, client: FacetTritonClient, timings: Timings) -> None:
        self._client, self._timings = client, timings

    async def enhance(self, rgb: UInt8Array, factor: int) -> UInt8Array:
        outscale = 2 if factor <= 2 else 4
        return await self._timings.run(
            "background_s",
            lambda: self._client.upscale_image(rgb, model=BACKGROUND_UPSCALER, outscale=outscale),
        )


@dataclass(frozen=True)
class PipelineResult:
    rgb: UInt8Array
    faces_detected: int
    faces_restored: int
    background: str
    timings: dict[str, float]
    cropped_faces: list[UInt8Array]
    restored_faces: list[UInt8Array]


def restore_on_triton(
    client: FacetTritonClient, rgb: UInt8Array, request: RestoreRequest, used: dict[str, str]
) -> PipelineResult:
    """Restore every face of an RGB image as the gateway's /restore would with `request`."""
    timings = Timings()
    restorer = TritonRestorer(client, used["restorer"], timings, keep=request.want_faces)
    background = TritonBackground(client, timings) if request.background else None
    started = time.monotonic()
    try:
        outcome = _run_sync(
            restore_image(
                rgb,
                TritonDetector(client, request.detector, timings),
                restorer,
                weight=request.weight,
                upscale=request.upscale,
                background=background.enhance if background else None,
                only_center_face=request.only_center_face,
                min_score=request.min_score,
            )
        )
    except FacetError as exc:  # the pipeline's check of what a model answered
        raise ServerError(exc.detail) from exc
    spent = {name: round(seconds, 3) for name, seconds in timings.spent.items()}
    spent["total_s"] = round(time.monotonic() - started, 3)
    return PipelineResult(
        rgb=outcome.image,
        faces_detected=outcome.detected_count,
        faces_restored=outcome.restored_count,
        background=outcome.background,
        timings=spent,
        cropped_faces=restorer.crops,
        restored_faces=[
            blend_weight(out, crop, request.weight)
            for out, crop in zip(restorer.outputs, restorer.crops, strict=True)
        ],
    )
