"""The gateway does the work: /health says what is served, /restore restores and /download
gives the image. Faces are found by Triton's detector over gRPC (at `triton_url`), because
the gateway has no detection-only route."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from clients.errors import BadRequestError
from clients.gfpp.detect import detect_faces
from clients.gfpp.io.images import ImageInput, decode_image
from clients.gfpp.names import entry_point, served_models
from clients.gfpp.server import FacetServer
from clients.gfpp.session import Detection, Restored, RestoreRequest, ServedModel
from clients.rest import FacetRestClient

if TYPE_CHECKING:
    from clients.triton_grpc import FacetTritonClient

NO_FACES_OVER_REST = (
    "the gateway's /restore answers the restored image only; cropped and restored faces need "
    "the gRPC transport (FacetServer(via='grpc') or FACET_VIA=grpc)"
)


class RestSession:
    def __init__(self, server: FacetServer) -> None:
        self.server = server
        self._rest = FacetRestClient(server.gateway_url)
        self._triton: FacetTritonClient | None = None

    def close(self) -> None:
        self._rest.close()
        if self._triton is not None:
            self._triton.close()

    def served_models(self) -> dict[str, ServedModel]:
        return models_from_health(self._rest.health())

    def detect(
        self, rgb: npt.NDArray[np.uint8], *, detector: str, min_score: float
    ) -> list[Detection]:
        return detect_faces(self._triton_client(), rgb, detector=detector, min_score=min_score)

    def restore(self, image: ImageInput, request: RestoreRequest) -> Restored:
        if request.want_faces:
            raise BadRequestError(NO_FACES_OVER_REST)
        started = time.monotonic()
        answer = self._rest.restore(
            image.encoded(),
            version=request.version,
            upscale=request.upscale,
            weight=request.weight,
            only_center_face=request.only_center_face,
            background_enhance=request.background,
            face_detector_model=request.detector,
            face_detector_score=request.min_score,
            filename=image.name,
            timeout_s=self.server.timeout_s,
        )
        pixels = decode_image(self._rest.download_restored(answer))
        return Restored(
            rgb=pixels.rgb,
            alpha=pixels.alpha,
            faces_detected=answer.faces_detected or 0,
            faces_restored=answer.faces_restored or 0,
            warning=answer.warning,
            timings={
                "server_s": answer.processing_time,
                "total_s": round(time.monotonic() - started, 3),
            },
            restoration_id=answer.restoration_id,
        )

    def _triton_client(self) -> FacetTritonClient:
        if self._triton is None:
            from clients.triton_grpc import FacetTritonClient

            self._triton = FacetTritonClient(
                self.server.triton_url, timeout_s=self.server.timeout_s
            )
        return self._triton


def models_from_health(health: Mapping[str, Any]) -> dict[str, ServedModel]:
    """The gateway's /health `models` as ServedModels. Readiness is the entry's own `ready`,
    else Triton's readiness of the model's entry point when the gateway polls it, else unknown;
    a Triton that is not ready makes every model not ready."""
    triton = health.get("triton") or {}
    polled = triton.get("models") or {}
    server_ready = triton.get("server_ready")
    found: dict[str, ServedModel] = {}
    for name, entry in (health.get("models") or {}).items():
        if name not in served_models() or not isinstance(entry, Mapping):
            continue
        point = entry_point(name)
        ready = entry.get("ready", polled.get(point))
        if server_ready is False:
            ready = False
        found[name] = ServedModel(
            name=name,
            entry_point=point,
            installed=bool(entry.get("installed")),
            ready=ready if isinstance(ready, bool) else None,
            version=None,  # /health does not say
            weights=str(entry.get("weights", "unknown")),
            licence=entry.get("licence"),
            synthetic=bool(entry.get("synthetic")),
            warning=entry.get("warning"),
        )
    return found
