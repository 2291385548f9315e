"""The FaceFusion REST API, field for field as its users already call it: /process/image,
/process/video, /processors, /output/{filename} (and /download/{filename} in downloads.py)."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel

from gateway.errors import FacetError, NotFound, Overloaded, PayloadTooLarge
from gateway.imageio import DecodedImage, decode_upload, encode_image, fit_alpha, output_format_for
from gateway.jobs.store import Job
from gateway.openapi import errors
from gateway.routes.deps import rate_limited, services_of
from gateway.routes.upscale import READ_CHUNK, read_limited, safe_filename
from gateway.services import Services
from gateway.swap.frames import FrameStats
from gateway.swap.outputs import SWAP_KINDS, new_job_id, output_path, store_image_output
from gateway.swap.request import ProcessRequest, parse_request
from gateway.swap.video_job import KIND as VIDEO_KIND
from gateway.swap.video_job import job_parameters
from gateway.video.probe import VideoLimits, probe_video
from gateway.weights import synthetic_warning

router = APIRouter(tags=["face swap (FaceFusion API)"])
REQUEST_FIELD = Form(
    description='ProcessRequest as JSON, e.g. {"processors":["face_swapper"],'
    '"execution_providers":["cpu"]}; omitted: face_swapper with defaults'
)


class ProcessResponse(BaseModel):
    job_id: str
    status: Literal["completed", "queued", "processing", "failed"]
    output_path: str | None = None
    processing_time: float | None = None
    faces_detected: int | None = None
    faces_processed: int | None = None
    frames: int | None = None
    execution_providers: list[str] | None = None
    status_url: str | None = None
    warning: str | None = None


class Processor(BaseModel):
    name: str
    available: bool
    warning: str | None = None


class Deleted(BaseModel):
    message: str
    filename: str


@router.post(
    "/process/image",
    response_model=ProcessResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def process_image(
    http: Request,
    target: Annotated[UploadFile, File(description="the image whose faces are processed")],
    source: Annotated[
        UploadFile | None, File(description="the face to swap in (face_swapper needs it)")
    ] = None,
    request: Annotated[str | None, REQUEST_FIELD] = None,
) -> ProcessResponse:
    """Swap the source's face into every selected face of the target (and/or enhance), at
    once; the result is downloaded from /download/{filename}."""
    services = services_of(http)
    parsed = parse_request(request)
    await services.swap.check(parsed, has_source=source is not None)
    check_slots(services)  # before decoding: a request that will be refused costs nothing more
    limit = services.settings.max_upload_bytes
    target_image = await decode(services, await read_limited(target, limit))
    sources = [await decode(services, await read_limited(source, limit))] if source else []
    check_slots(services)
    started = time.monotonic()
    stats = FrameStats()
    async with services.restore_slots:
        identity = None
        if "face_swapper" in parsed.processors:
            identity = await services.swap.identity([s.rgb for s in sources], parsed)
        reference = await services.swap.reference(target_image.rgb, parsed)
        frames = await services.swap.transform(
            [target_image.rgb],
            parsed,
            identity,
            stats,
            scale_percent=parsed.output_image_scale,
            reference=reference,
        )
    job = await store_image(services, target_image, frames[0], parsed, target, stats)
    return ProcessResponse(
        job_id=job.id,
        status="completed",
        output_path=output_path(job.result_id or ""),
        processing_time=round(time.monotonic() - started, 3),
        faces_detected=stats.faces_detected,
        faces_processed=stats.faces_processed,
        execution_providers=services.swap.executions(parsed),
        warning=synthetic_warning(services.swap.synthetic_models(parsed)),
    )


def check_slots(services: Services) -> None:
    if services.restore_slots.locked():
        raise slots_busy()


def slots_busy() -> Overloaded:
    return Overloaded("all face-processing slots are busy; try again shortly", retry_after=5)


async def check_queue(services: Services) -> None:
    """An early refusal before the video is stored and probed; `admit` makes the binding one."""
    if await asyncio.to_thread(services.store.count_active) >= services.settings.max_pending_jobs:
        raise queue_full()


def queue_full() -> Overloaded:
    return Overloaded("too many jobs are waiting; try again shortly", retry_after=30)


async def decode(services: Services, data: bytes) -> DecodedImage:
    return await asyncio.to_thread(decode_upload, data, services.settings)


async def store_image(
    services: Services,
    decoded: DecodedImage,
    rgb: npt.NDArray[np.uint8],
    parsed: ProcessRequest,
    target: UploadFile,
    stats: FrameStats,
) -> Job:
    """Encode the result in the target's format (its alpha kept) and keep it as a job."""
    fmt = output_format_for(decoded)
    alpha = fit_alpha(decoded.alpha, rgb.shape)
    encoded = await asyncio.to_thread(
        encode_image, rgb, alpha, fmt, grayscale=decoded.was_grayscale
    )
    outcome = {
        "faces_detected": stats.faces_detected,
        "faces_processed": stats.faces_processed,
        "synthetic_models": services.swap.synthetic_models(parsed),
        "execution_providers": services.swap.executions(parsed),
    }
    return await asyncio.to_thread(
        store_image_output,
        services.store,
        services.files,
        encoded,
        fmt,
        parsed.model_dump(by_alias=True),
        safe_filename(target.filename),
        outcome,
    )


@router.post(
    "/process/video",
    response_model=ProcessResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def process_video(
    http: Request,
    target: Annotated[
        UploadFile, File(description="MP4, MOV, M4V, MKV, WebM or AVI (sniffed from the bytes)")
    ],
    source: Annotated[
        UploadFile | None, File(description="the face to swap in (face_swapper needs it)")
    ] = None,
    request: Annotated[str | None, REQUEST_FIELD] = None,
) -> ProcessResponse:
    """Process every frame of the target video and keep its audio and timestamps. Answers
    when the video is done (the seed's way), or at once with `"async": true` in the request:
    then poll /status/{job_id}."""
    services = services_of(http)
    parsed = parse_request(request)
    await services.swap.check(parsed, has_source=source is not None)
    # Refused before the upload is stored, probed and the source's face computed in Triton.
    if parsed.run_async:
        await check_queue(services)
    else:
        check_slots(services)
    source_image = None
    if source is not None:
        source_image = await decode(
            services, await read_limited(source, services.settings.max_upload_bytes)
        )
    upload = await save_limited(target, services)
    try:
        info = await asyncio.to_thread(
            probe_video, upload, VideoLimits.from_settings(services.settings)
        )
        identity = None
        if "face_swapper" in parsed.processors and source_image is not None:
            identity = await services.swap.identity([source_image.rgb], parsed)
    except BaseException:
        services.files.remove(upload)
        raise
    parameters = job_parameters(parsed, identity, info.container)
    filename = safe_filename(target.filename)
    if parsed.run_async:
        return await queue_video(services, parameters, filename, upload)
    return await run_video_now(services, parameters, filename, upload, parsed)


async def save_limited(file: UploadFile, services: Services) -> Path:
    """Stream an upload to the uploads folder, refusing it past the video size limit."""
    limit = services.settings.video_max_bytes
    size = 0
    path = services.files.new_upload_path()
    try:
        with path.open("wb") as handle:
            while chunk := await file.read(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"video too large: the limit is {limit // (1024 * 1024)} MB "
                        "(video_max_bytes)"
                    )
                await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        services.files.remove(path)
        raise
    return path


async def queue_video(
    services: Services, parameters: dict[str, Any], filename: str, upload: Path
) -> ProcessResponse:
    job = await asyncio.to_thread(
        functools.partial(
            services.store.admit,
            VIDEO_KIND,
            parameters,
            filename,
            str(upload),
            max_active=services.settings.max_pending_jobs,
            job_id=new_job_id(),
        )
    )
    if job is None:
        services.files.remove(upload)
        raise queue_full()
    services.queue.enqueue(job.id)
    return ProcessResponse(job_id=job.id, status="queued", status_url=f"/status/{job.id}")


async def run_video_now(
    services: Services,
    parameters: dict[str, Any],
    filename: str,
    upload: Path,
    parsed: ProcessRequest,
) -> ProcessResponse:
    """The seed's synchronous mode: the job runs inside the request, and is recorded like a
    queued one (its status and output outlive the request)."""
    if services.restore_slots.locked():
        services.files.remove(upload)
        raise slots_busy()
    job = await asyncio.to_thread(
        services.store.create, VIDEO_KIND, parameters, filename, str(upload), job_id=new_job_id()
    )
    started = time.monotonic()
    try:
        async with services.restore_slots:
            claimed = await asyncio.to_thread(services.store.claim, job.id)
            assert claimed is not None
            await services.swap_video.run(claimed)
    except FacetError as exc:
        await asyncio.to_thread(services.store.fail, job.id, exc.detail)
        raise
    except BaseException:
        await asyncio.to_thread(services.store.fail, job.id, "interrupted")
        raise
    finally:
        services.store.release(job.id)
        services.files.remove(upload)
    done = await asyncio.to_thread(services.store.get, job.id)
    assert done is not None
    recorded = done.outcome or {}
    return ProcessResponse(
        job_id=done.id,
        status="completed" if done.status == "completed" else "failed",
        output_path=output_path(done.result_id) if done.result_id else None,
        processing_time=round(time.monotonic() - started, 3),
        faces_detected=recorded.get("faces_detected"),
        faces_processed=recorded.get("faces_processed"),
        frames=recorded.get("frames"),
        execution_providers=recorded.get("execution_providers"),
        warning=synthetic_warning(recorded.get("synthetic_models", [])),
    )


@router.get(
    "/processors",
    response_model=list[Processor],
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("status"))],
    responses=errors(429),
)
async def processors(http: Request) -> list[Processor]:
    """Each processor and whether this server can run it now (its models ready in Triton)."""
    services = services_of(http)
    return [
        Processor(name=info.name, available=info.available, warning=info.warning)
        for info in services.swap.processors()
    ]


@router.delete(
    "/output/{filename}",
    response_model=Deleted,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(404, 429),
)
async def delete_output(filename: str, http: Request) -> Deleted:
    """Delete a processed output now (it would expire after the result TTL anyway)."""
    services = services_of(http)
    job = await asyncio.to_thread(services.store.get_by_result, filename)
    if job is None or job.kind not in SWAP_KINDS:
        raise NotFound("Output not found")
    services.files.remove(job.result_path)
    await asyncio.to_thread(services.store.delete, job.id)
    return Deleted(message="Output deleted", filename=filename)
