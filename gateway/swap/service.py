"""Face swapping as the gateway offers it: which processors the server has (read from Triton's
catalog), what a request needs ready, the source identity, and the per-window transform that
images and videos share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest
from gateway.faces.service import RestoreService
from gateway.faces.swap_pipeline import (
    Embedding,
    SourceIdentity,
    embed_faces,
    source_identity,
    usable_faces,
)
from gateway.faces.swap_sessions import (
    SWAP_MODELS,
    TritonFaceEmbedder,
    TritonFaceSwapper,
    TritonLatentMaker,
)
from gateway.faces.triton_sessions import (
    DETECTORS,
    RESTORE_ENSEMBLE_PREFIX,
    RESTORERS,
    TritonFaceDetector,
    TritonFaceRestorer,
)
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from gateway.swap.frames import FrameStats, SwapModels, process_frames
from gateway.swap.request import PROCESSORS, ProcessRequest
from gateway.triton_client import TritonClient
from gateway.weights import describe_model, synthetic_in, synthetic_warning
from triton_core.catalog import ModelCatalog

Image = npt.NDArray[np.uint8]
RESTORER: Final = f"{RESTORE_ENSEMBLE_PREFIX}{RESTORERS['1.4']}"


@dataclass(frozen=True)
class ProcessorInfo:
    name: str
    available: bool
    models: tuple[str, ...]
    warning: str | None = None


class SwapService:
    def __init__(
        self, client: TritonClient, faces: RestoreService, upscaler: TritonTileUpscaler
    ) -> None:
        self._client = client
        self._faces = faces
        self._upscaler = upscaler

    def processor_models(self, processor: str) -> tuple[str, ...]:
        """The served models a processor calls (the face detector aside)."""
        if processor == "face_swapper":
            return SWAP_MODELS
        if processor == "face_enhancer":
            return (RESTORER,)
        return (self._upscaler.ensemble,)

    def processors(self) -> list[ProcessorInfo]:
        """Each processor, available when all its models are ready in Triton now."""
        catalog = self._client.catalog
        listed = []
        for name in PROCESSORS:
            models = self.processor_models(name)
            ready = all(model in catalog for model in models)
            detector = any(model in catalog for model in DETECTORS.values())
            listed.append(
                ProcessorInfo(
                    name,
                    ready and detector,
                    models,
                    synthetic_warning(synthetic_in(catalog, models)),
                )
            )
        return listed

    def models(self) -> dict[str, dict[str, object]]:
        """Health's entries for the swap models, keyed by served name."""
        return {model: describe_model(self._client.catalog, model) for model in SWAP_MODELS}

    def available(self) -> list[str]:
        return [info.name for info in self.processors() if info.available]

    async def check(self, request: ProcessRequest, *, has_source: bool) -> None:
        """400 for what the client chose wrongly; 503 (via require_ready) for what is not
        ready yet."""
        if "face_swapper" in request.processors and not has_source:
            raise BadRequest("face_swapper needs a 'source' image with a face")
        if request.face_detector_model not in DETECTORS:
            raise BadRequest(f"face_detector_model must be one of: {', '.join(sorted(DETECTORS))}")
        catalog = await self._client.current_catalog()
        installed = self._installed(catalog)
        missing = [processor for processor in request.processors if processor not in installed]
        if missing:
            raise BadRequest(
                f"processor(s) {', '.join(missing)} are not installed on this server; "
                f"installed: {', '.join(installed) or 'none'}"
            )
        detector = DETECTORS[request.face_detector_model]
        if not catalog.is_installed(detector):
            raise BadRequest(
                f"face_detector_model '{request.face_detector_model}' is not installed"
            )
        for model in self.models_used(request):
            await self._client.require_ready(model)

    def _installed(self, catalog: ModelCatalog) -> list[str]:
        return [
            name
            for name in PROCESSORS
            if all(catalog.is_installed(m) for m in self.processor_models(name))
        ]

    def models_used(self, request: ProcessRequest) -> list[str]:
        used = [DETECTORS[request.face_detector_model]]
        for processor in request.processors:
            used.extend(self.processor_models(processor))
        return list(dict.fromkeys(used))

    def sessions(self, request: ProcessRequest) -> SwapModels:
        return SwapModels(
            detector=TritonFaceDetector(self._client, DETECTORS[request.face_detector_model]),
            embedder=TritonFaceEmbedder(self._client),
            latent_maker=TritonLatentMaker(self._client),
            swapper=TritonFaceSwapper(self._client),
            restorer=TritonFaceRestorer(self._client, RESTORERS["1.4"]),
            upscaler=self._faces.enhance_background,
        )

    async def identity(self, sources: list[Image], request: ProcessRequest) -> SourceIdentity:
        models = self.sessions(request)
        assert models.embedder is not None
        return await source_identity(
            sources, models.detector, models.embedder, min_score=request.face_detector_score
        )

    async def reference(self, frame: Image, request: ProcessRequest) -> Embedding | None:
        """Reference mode: the embedding of the target face FaceFusion would take as the
        reference (`reference_face_position` among the frame's faces, largest first)."""
        if request.face_selector_mode != "reference" or "face_swapper" not in request.processors:
            return None
        models = self.sessions(request)
        assert models.embedder is not None
        detected = await models.detector.detect(frame, min_score=request.face_detector_score)
        faces = usable_faces(detected, request.face_detector_score)
        position = request.reference_face_position
        if position >= len(faces):
            raise BadRequest(
                f"reference_face_position {position} names no face: the reference frame has "
                f"{len(faces)} usable face(s)"
            )
        embeddings: Embedding = await embed_faces([frame], [[faces[position]]], models.embedder)
        return np.asarray(embeddings[0], dtype=np.float32)

    async def transform(
        self,
        frames: list[Image],
        request: ProcessRequest,
        identity: SourceIdentity | None,
        stats: FrameStats,
        *,
        scale_percent: int,
        reference: Embedding | None = None,
    ) -> list[Image]:
        return await process_frames(
            frames,
            request,
            self.sessions(request),
            identity,
            stats,
            scale_percent=scale_percent,
            reference=reference,
        )

    def synthetic_models(self, request: ProcessRequest) -> list[str]:
        return synthetic_in(self._client.catalog, self.models_used(request))

    def executions(self, request: ProcessRequest) -> list[str]:
        """The execution providers Triton ran this request's models on."""
        catalog = self._client.catalog
        found = {e for model in self.models_used(request) for e in catalog.executions(model)}
        return sorted(found)
