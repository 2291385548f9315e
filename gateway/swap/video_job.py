"""The `swap_video` job: the uploaded video through the request's processors, decode, inference
and encode overlapping (gateway.video), windows of frames batched into each model call.

The same job runs inside the request (the seed's synchronous /process/video) or from the queue
(`"async": true`, polled at /status/{job_id}). The source identity is computed in the request,
so a source without a face is refused at once, and kept with the job as its embedding (the
source photo itself is not stored); it is deleted with the job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest, JobCancelled
from gateway.faces.swap_pipeline import Embedding, SourceIdentity
from gateway.jobs.store import Job, JobStore
from gateway.settings import Settings
from gateway.storage import FileStore
from gateway.swap.frames import FrameStats
from gateway.swap.request import ProcessRequest
from gateway.swap.service import SwapService
from gateway.video.pipeline import VideoOptions, VideoResult, process_video
from gateway.video.probe import VideoLimits
from gateway.video.reader import FrameReader, to_rgb
from gateway.video.sniff import ContainerKind

Image = npt.NDArray[np.uint8]
KIND: Final = "swap_video"
MEDIA_TYPES: Final = {".mp4": "video/mp4", ".webm": "video/webm"}
IDENTITY_KEY: Final = "source_identity"  # a unit embedding, never shown in a status


def output_extension(container: str) -> str:
    """WebM stays WebM (VP9); every other accepted container becomes MP4 (H.264)."""
    return ".webm" if container == "webm" else ".mp4"


def job_parameters(
    request: ProcessRequest, identity: SourceIdentity | None, container: ContainerKind
) -> dict[str, Any]:
    """What the job needs to run later: the request, the probed container, the identity."""
    parameters: dict[str, Any] = {
        "request": request.model_dump(by_alias=True),
        "container": container,
    }
    if identity is not None:
        parameters[IDENTITY_KEY] = [float(v) for v in identity.embedding]
    return parameters


def public_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k != IDENTITY_KEY}


class SwapVideoJob:
    def __init__(
        self, settings: Settings, store: JobStore, files: FileStore, swap: SwapService
    ) -> None:
        self._settings = settings
        self._store = store
        self._files = files
        self._swap = swap

    async def __call__(self, job: Job) -> None:
        await self.run(job)

    async def run(self, job: Job) -> VideoResult | None:
        """Process the job's video; None when the job was cancelled before it finished."""
        request = ProcessRequest.model_validate(job.parameters["request"])
        identity = stored_identity(job.parameters)
        source = Path(job.input_path)
        kind: ContainerKind = job.parameters["container"]
        reference = await self._reference(source, kind, request)
        name, path = self._files.allocate_output(output_extension(kind))
        stats = FrameStats()
        progress = ProgressRecorder(self._store, job.id)

        async def transform(frames: list[Image]) -> list[Image]:
            if not await asyncio.to_thread(self._store.holds, job.id):
                raise JobCancelled("the job was cancelled")
            return await self._swap.transform(
                frames, request, identity, stats, scale_percent=100, reference=reference
            )

        try:
            result = await process_video(
                source,
                path,
                transform,
                options=self.video_options(request),
                progress=progress,
            )
        except BaseException:
            self._files.remove(path)
            raise
        await asyncio.to_thread(
            self._store.set_outcome, job.id, outcome(result, stats, self._swap, request)
        )
        done = await asyncio.to_thread(
            self._store.complete, job.id, name, str(path), MEDIA_TYPES[path.suffix]
        )
        if not done:  # cancelled at the last moment: the output is nobody's
            self._files.remove(path)
            return None
        return result

    def video_options(self, request: ProcessRequest) -> VideoOptions:
        return VideoOptions(
            output_fps=request.output_video_fps,
            output_scale=request.output_video_scale,
            window=self._settings.video_window_frames,
            limits=VideoLimits.from_settings(self._settings),
        )

    async def _reference(
        self, source: Path, kind: ContainerKind, request: ProcessRequest
    ) -> Embedding | None:
        if request.face_selector_mode != "reference":
            return None
        frame = await asyncio.to_thread(
            read_frame, source, kind, request.reference_frame_number, self._settings
        )
        return await self._swap.reference(frame, request)


def read_frame(path: Path, kind: ContainerKind, number: int, settings: Settings) -> Image:
    """Frame `number` of the video (the last one if it has fewer), as RGB."""
    last = None
    with FrameReader(path, kind, timeout_s=settings.video_stall_timeout_s) as reader:
        for index, frame in enumerate(reader.frames()):
            last = frame
            if index >= number:
                break
    if last is None:
        raise BadRequest("the video has no frames")
    return to_rgb(last)


def stored_identity(parameters: dict[str, Any]) -> SourceIdentity | None:
    values = parameters.get(IDENTITY_KEY)
    if values is None:
        return None
    embedding = np.asarray(values, dtype=np.float32)
    return SourceIdentity(embedding=embedding, faces=[], image_count=1)


class ProgressRecorder:
    """The encoder's per-frame progress as the job's percentage, written when it changes."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._percent = -1

    def __call__(self, done: int, total: int) -> None:
        percent = min(99, int(99 * done / max(1, total)))
        if percent != self._percent:
            self._percent = percent
            self._store.set_progress(self._job_id, percent)


def outcome(
    result: VideoResult, stats: FrameStats, swap: SwapService, request: ProcessRequest
) -> dict[str, Any]:
    """What the run did, kept with the job for its status."""
    timings = result.timings
    return {
        "frames_in": result.frames_in,
        "frames": result.frames_out,
        "fps": round(result.fps, 3),
        "duration_s": round(result.duration_s, 3),
        "size": [result.width, result.height],
        "video_codec": result.video_codec,
        "audio": result.audio,
        "faces_detected": stats.faces_detected,
        "faces_processed": stats.faces_processed,
        "seconds": {
            "decode": round(timings.decode_s, 3),
            "models": round(timings.transform_s, 3),
            "encode": round(timings.encode_s, 3),
            "total": round(timings.total_s, 3),
        },
        "synthetic_models": swap.synthetic_models(request),
        "execution_providers": swap.executions(request),
    }
