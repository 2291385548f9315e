"""Triton does the work, reached directly over gRPC: its repository index and configs say what
is served and on which weights, its detector finds faces, and the GFPGAN ensemble restores
them; this process aligns, blends and pastes with the gateway's own pipeline
(`clients.gfpp.face_pipeline`), so the image equals what the gateway would return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np
import numpy.typing as npt

from clients.gfpp.detect import detect_faces, detector_model
from clients.gfpp.io.images import ImageInput
from clients.gfpp.names import BACKGROUND_UPSCALER, VERSIONS, entry_point, served_models
from clients.gfpp.server import FacetServer
from clients.gfpp.session import Detection, Restored, RestoreRequest, ServedModel
from clients.triton_grpc import FacetTritonClient, ModelSummary
from triton_core.catalog import SYNTHETIC_WARNING, ModelCatalog, ModelFacts


class GrpcSession:
    def __init__(self, server: FacetServer) -> None:
        self.server = server
        self._client = FacetTritonClient(server.triton_url, timeout_s=server.timeout_s)
        self._catalog: ModelCatalog | None = None

    def close(self) -> None:
        self._client.close()

    def served_models(self) -> dict[str, ServedModel]:
        summaries = ready_first(self._client.models())
        self._catalog = build_catalog(self._client, summaries, map(entry_point, served_models()))
        return {name: describe(name, summaries, self._catalog) for name in served_models()}

    def detect(
        self, rgb: npt.NDArray[np.uint8], *, detector: str, min_score: float
    ) -> list[Detection]:
        return detect_faces(self._client, rgb, detector=detector, min_score=min_score)

    def restore(self, image: ImageInput, request: RestoreRequest) -> Restored:
        # Imported here: the pipeline's modules live in the gateway package (numpy/OpenCV only).
        from clients.gfpp.face_pipeline import restore_on_triton

        pixels = image.pixels()
        used = self._models_used(request)
        outcome = restore_on_triton(self._client, pixels.rgb, request, used)
        alpha = None
        if pixels.alpha is not None:
            height, width = outcome.rgb.shape[:2]
            alpha = np.asarray(
                cv2.resize(pixels.alpha, (width, height), interpolation=cv2.INTER_LINEAR),
                dtype=np.uint8,
            )
        return Restored(
            rgb=outcome.rgb,
            alpha=alpha,
            faces_detected=outcome.faces_detected,
            faces_restored=outcome.faces_restored,
            warning=self._warning(used.values()),
            timings=outcome.timings,
            background=outcome.background,
            cropped_faces=outcome.cropped_faces,
            restored_faces=outcome.restored_faces,
        )

    def _models_used(self, request: RestoreRequest) -> dict[str, str]:
        """The Triton models a restoration with `request` calls, by role."""
        used = {
            "detector": detector_model(request.detector),
            "restorer": entry_point(VERSIONS[request.version]),
        }
        if request.background:
            used["background"] = entry_point(BACKGROUND_UPSCALER)
        return used

    def _warning(self, models: Iterable[str]) -> str | None:
        if self._catalog is None:
            self.served_models()
        assert self._catalog is not None
        catalog = self._catalog
        synthetic = sorted({m for model in models for m in catalog.weights(model).synthetic_models})
        return f"{', '.join(synthetic)}: {SYNTHETIC_WARNING}" if synthetic else None


def ready_first(summaries: Iterable[ModelSummary]) -> dict[str, ModelSummary]:
    """One summary per model name (the index lists each version): a ready one when any is."""
    chosen: dict[str, ModelSummary] = {}
    for summary in summaries:
        if summary.name not in chosen or (summary.ready and not chosen[summary.name].ready):
            chosen[summary.name] = summary
    return chosen


def build_catalog(
    client: FacetTritonClient, summaries: Mapping[str, ModelSummary], roots: Iterable[str]
) -> ModelCatalog:
    """The facts of `roots` and everything they are composed of, as far as those are ready."""
    facts: dict[str, ModelFacts] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        summary = summaries.get(name)
        if name in facts or summary is None or not summary.ready:
            continue
        facts[name] = client.model_facts(name)
        pending.extend(facts[name].components)
    return ModelCatalog(facts.values(), listed=summaries)


def describe(
    name: str, summaries: Mapping[str, ModelSummary], catalog: ModelCatalog
) -> ServedModel:
    point = entry_point(name)
    weights = catalog.weights(point)
    own = summaries.get(name) or summaries.get(point)
    entry = summaries.get(point)
    return ServedModel(
        name=name,
        entry_point=point,
        installed=catalog.is_installed(point),
        ready=bool(entry and entry.ready),
        version=own.version if own is not None and own.version else None,
        weights=weights.kind if point in catalog else "unknown",
        licence="; ".join(weights.licences) or None,
        synthetic=weights.synthetic,
        warning=weights.warning,
    )
