"""The `upscale` job: decode → tiled Real-ESRGAN through Triton (or, with face_enhance, the GFPGAN
pipeline with Real-ESRGAN as its background) → encode → store."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.faces.service import RestoreOptions, RestoreService
from gateway.imageio import (
    decode_upload,
    encode_image,
    fit_alpha,
    media_type_for,
    output_format_for,
)
from gateway.jobs.store import Job, JobStore
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from gateway.pipelines.upscale import upscale_image, upscale_options
from gateway.settings import Settings
from gateway.storage import FileStore
from gateway.weights import synthetic_in

Image = npt.NDArray[np.uint8]
# Upstream's --face_enhance: GFPGAN on the faces, Real-ESRGAN on the rest.
FACE_ENHANCE = RestoreOptions(background_enhance=True)


class UpscaleJob:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        files: FileStore,
        upscaler: TritonTileUpscaler,
        faces: RestoreService,
    ) -> None:
        self._settings = settings
        self._store = store
        self._files = files
        self._upscaler = upscaler
        self._faces = faces
        self.observed_seconds: deque[float] = deque(maxlen=20)

    async def __call__(self, job: Job) -> None:
        started = time.monotonic()
        data = await asyncio.to_thread(Path(job.input_path).read_bytes)
        decoded = await asyncio.to_thread(decode_upload, data, self._settings)
        scale = int(job.parameters["scale"])
        if job.parameters.get("face_enhance"):
            rgb, alpha = await self._enhance_faces(decoded.rgb, decoded.alpha, scale)
        else:
            rgb, alpha = await upscale_image(
                decoded.rgb,
                decoded.alpha,
                self._upscaler,
                upscale_options(self._settings, outscale=scale),
                on_progress=lambda fraction: self._record_progress(job.id, fraction),
                is_cancelled=lambda: self._is_cancelled(job.id),
            )
        # What this run used, recorded with the job: its status says so even if the models change.
        synthetic = {"synthetic_models": self.synthetic_models(job.parameters)}
        await asyncio.to_thread(self._store.set_outcome, job.id, synthetic)
        fmt = output_format_for(decoded, outscale=scale)
        encoded = await asyncio.to_thread(
            encode_image, rgb, alpha, fmt, grayscale=decoded.was_grayscale
        )
        result_id, path = await asyncio.to_thread(self._files.save_result, encoded, fmt)
        done = await asyncio.to_thread(
            self._store.complete, job.id, result_id, str(path), media_type_for(fmt)
        )
        if not done:  # cancelled at the last moment: the result is nobody's
            self._files.remove(path)
            return
        pixels = decoded.rgb.shape[0] * decoded.rgb.shape[1]
        self.observed_seconds.append((time.monotonic() - started) / max(1, pixels))

    async def _record_progress(self, job_id: str, fraction: float) -> None:
        await asyncio.to_thread(self._store.set_progress, job_id, int(fraction * 99))

    async def _is_cancelled(self, job_id: str) -> bool:
        return not await asyncio.to_thread(self._store.holds, job_id)

    def synthetic_models(self, parameters: dict[str, object]) -> list[str]:
        """The models on synthetic weights that a job with `parameters` runs."""
        if parameters.get("face_enhance"):
            return self._faces.synthetic_models(FACE_ENHANCE)
        return synthetic_in(self._upscaler.catalog(), [self._upscaler.ensemble])

    async def _enhance_faces(
        self, rgb: Image, alpha: Image | None, scale: int
    ) -> tuple[Image, Image | None]:
        """GFPGAN on every face, Real-ESRGAN on the rest, as upstream's --face_enhance does."""
        options = replace(FACE_ENHANCE, upscale=scale)
        outcome = await self._faces.restore(rgb, options)
        return outcome.image, await asyncio.to_thread(fit_alpha, alpha, outcome.image.shape)

    def seconds_per_pixel(self) -> float | None:
        """Median of the recent jobs' wall time per input pixel, for `estimated_time`."""
        recent = sorted(self.observed_seconds)
        return recent[len(recent) // 2] if recent else None
