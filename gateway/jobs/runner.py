"""Runs one upscale job: claim → decode → tiled upscale through Triton → encode → store.

Huey's worker threads call `handle`; the work itself runs as a coroutine on the gateway's event
loop so that every job shares the one async Triton client (one channel, reused)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from gateway.errors import FacetError, JobCancelled, Unavailable
from gateway.imageio import decode_upload, encode_image, media_type_for, output_format_for
from gateway.jobs.store import Job, JobStore
from gateway.pipelines.upscale import TileUpscaler, UpscaleOptions, upscale_image
from gateway.settings import Settings
from gateway.storage import FileStore

log = logging.getLogger(__name__)
RETRY_PAUSE_CAP_S = 5.0


class UpscaleJobRunner:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        files: FileStore,
        upscaler: TileUpscaler,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._settings = settings
        self._store = store
        self._files = files
        self._upscaler = upscaler
        self._loop = loop
        self._requeue: Callable[[str], None] = lambda job_id: None
        self.observed_seconds: deque[float] = deque(maxlen=20)

    def set_requeue(self, requeue: Callable[[str], None]) -> None:
        """The queue is built around this runner's `handle`, so it is wired in afterwards."""
        self._requeue = requeue

    def handle(self, job_id: str) -> None:
        """Entry point for a worker thread: block until the job's coroutine has finished."""
        asyncio.run_coroutine_threadsafe(self.run(job_id), self._loop).result()

    async def run(self, job_id: str) -> None:
        job = await asyncio.to_thread(self._store.claim, job_id)
        if job is None:  # cancelled while queued, or already taken
            return
        try:
            await self._process(job)
        except JobCancelled:
            log.info("job %s cancelled while running", job_id)
        except Unavailable as exc:
            await self._retry_or_fail(job, f"inference service unavailable: {exc.detail}", exc)
        except FacetError as exc:
            await asyncio.to_thread(self._store.fail, job_id, exc.detail)
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            await asyncio.to_thread(
                self._store.fail, job_id, f"internal error ({type(exc).__name__})"
            )
        finally:
            await self._cleanup_input(job_id)

    async def _process(self, job: Job) -> None:
        started = time.monotonic()
        data = await asyncio.to_thread(Path(job.input_path).read_bytes)
        decoded = await asyncio.to_thread(decode_upload, data, self._settings)
        options = UpscaleOptions.from_settings(
            self._settings, outscale=int(job.parameters["scale"])
        )
        rgb, alpha = await upscale_image(
            decoded.rgb,
            decoded.alpha,
            self._upscaler,
            options,
            on_progress=lambda fraction: self._store.set_progress(job.id, int(fraction * 99)),
            is_cancelled=lambda: self._store.status_of(job.id) != "processing",
        )
        fmt = output_format_for(decoded, outscale=options.outscale)
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

    async def _retry_or_fail(self, job: Job, reason: str, exc: Unavailable) -> None:
        if job.attempts < self._settings.job_attempts:
            await asyncio.sleep(min(float(exc.retry_after or 1), RETRY_PAUSE_CAP_S))
            if await asyncio.to_thread(self._store.requeue, job.id, reason):
                self._requeue(job.id)
                return
        await asyncio.to_thread(self._store.fail, job.id, reason)

    async def _cleanup_input(self, job_id: str) -> None:
        job = await asyncio.to_thread(self._store.get, job_id)
        if job is not None and job.status not in ("queued", "processing"):
            self._files.remove(job.input_path)

    def seconds_per_pixel(self) -> float | None:
        """Median of the recent jobs' wall time per input pixel, for `estimated_time`."""
        recent = sorted(self.observed_seconds)
        return recent[len(recent) // 2] if recent else None
