"""Face restoration as the gateway offers it: which versions are installed, readiness, and one
call that runs the pipeline with Real-ESRGAN as the optional background enhancer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest
from gateway.faces.restore_pipeline import RestoreOutcome, restore_image
from gateway.faces.triton_sessions import (
    DETECTORS,
    RESTORE_ENSEMBLE_PREFIX,
    RESTORERS,
    TritonFaceDetector,
    TritonFaceRestorer,
)
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from gateway.pipelines.upscale import upscale_image, upscale_options
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from gateway.weights import describe_model, synthetic_in

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class RestoreOptions:
    version: str = "1.4"
    upscale: int = 2
    weight: float = 0.5
    only_center_face: bool = False
    background_enhance: bool = False
    detector: str = "mtcnn"
    min_score: float = 0.9


class RestoreService:
    def __init__(
        self, settings: Settings, client: TritonClient, upscaler: TritonTileUpscaler
    ) -> None:
        self._settings = settings
        self._client = client
        self._upscaler = upscaler

    def models(self) -> dict[str, dict[str, object]]:
        """Health's entries for the restorers and detectors, keyed by model name."""
        catalog = self._client.catalog
        served = {m: f"{RESTORE_ENSEMBLE_PREFIX}{m}" for m in RESTORERS.values()}
        served.update({m: m for m in DETECTORS.values()})
        return {name: describe_model(catalog, model) for name, model in served.items()}

    async def installed_versions(self) -> list[str]:
        """The versions whose restore ensemble is in Triton's repository (ready or loading)."""
        catalog = await self._client.current_catalog()
        return [
            v for v, m in RESTORERS.items() if catalog.is_installed(f"{RESTORE_ENSEMBLE_PREFIX}{m}")
        ]

    async def check_options(self, options: RestoreOptions) -> None:
        """400 for what the client chose wrongly, naming what would have been accepted."""
        versions = await self.installed_versions()
        if options.version not in versions:
            raise BadRequest(
                f"version '{options.version}' is not installed; installed: "
                f"{', '.join(versions) or 'none'}"
            )
        if options.detector not in DETECTORS:
            raise BadRequest(f"face_detector_model must be one of: {', '.join(sorted(DETECTORS))}")
        catalog = await self._client.current_catalog()
        detectors = [name for name, model in DETECTORS.items() if catalog.is_installed(model)]
        if options.detector not in detectors:
            raise BadRequest(
                f"face_detector_model '{options.detector}' is not installed on this server; "
                f"installed: {', '.join(detectors) or 'none'}"
            )
        if not 1 <= options.upscale <= 4:
            raise BadRequest("upscale must be between 1 and 4")
        if not 0.0 <= options.weight <= 1.0:
            raise BadRequest("weight must be between 0 and 1")
        if not 0.0 < options.min_score <= 1.0:
            raise BadRequest("face_detector_score must be in (0, 1]")

    async def check_ready(self, options: RestoreOptions) -> None:
        restorer = TritonFaceRestorer(self._client, RESTORERS[options.version])
        models = [restorer.ensemble, DETECTORS[options.detector]]
        if options.background_enhance:
            models.append(self._upscaler.ensemble)
        for model in models:
            await self._client.require_ready(model)

    async def restore(self, rgb: Image, options: RestoreOptions) -> RestoreOutcome:
        return await restore_image(
            rgb,
            TritonFaceDetector(self._client, DETECTORS[options.detector]),
            TritonFaceRestorer(self._client, RESTORERS[options.version]),
            weight=options.weight,
            upscale=options.upscale,
            background=self.enhance_background if options.background_enhance else None,
            only_center_face=options.only_center_face,
            min_score=options.min_score,
        )

    async def enhance_background(self, rgb: Image, factor: int) -> Image:
        # The ×4 network (then an area resize for ×2); other factors are resized by the caller.
        options = upscale_options(self._settings, outscale=2 if factor <= 2 else 4)
        upscaled, _ = await upscale_image(rgb, None, self._upscaler, options)
        return upscaled

    def synthetic_models(self, options: RestoreOptions) -> list[str]:
        """The models with synthetic weights that a restoration with `options` uses."""
        served = [f"{RESTORE_ENSEMBLE_PREFIX}{RESTORERS[options.version]}"]
        served.append(DETECTORS[options.detector])
        if options.background_enhance:
            served.append(self._upscaler.ensemble)
        return synthetic_in(self._client.catalog, served)
