"""The Real-ESRGAN upscaler API, field for field as its users already call it."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from gateway.errors import BadRequest, NotFound, Overloaded, PayloadTooLarge
from gateway.faces.service import RestoreOptions
from gateway.faces.swap_sessions import SWAPPER
from gateway.imageio import decode_upload
from gateway.jobs.store import FINISHED, Job
from gateway.openapi import errors
from gateway.routes.deps import base_url, rate_limited, services_of
from gateway.services import Services
from gateway.swap.outputs import output_path
from gateway.swap.video_job import public_parameters
from gateway.weights import synthetic_warning

router = APIRouter(tags=["upscale (Real-ESRGAN API)"])
READ_CHUNK = 1 << 20
# Measured with make up: x4plus on 2 CPU cores, a 160×160 JPEG at scale 2 took 22.5 s (4 tiles of
# 148² with their overlap), i.e. ~9e-4 s per input pixel. Replaced by observed jobs once any ran.
DEFAULT_SECONDS_PER_PIXEL = 9e-4
FACE_MODEL = "gfpgan_v1_4"


class UpscaleParameters(BaseModel):
    scale: int
    face_enhance: bool


class UpscaleAccepted(BaseModel):
    job_id: str
    status: Literal["queued"]
    message: str
    estimated_time: str
    parameters: UpscaleParameters


class JobStatusResponse(BaseModel):
    job_id: str
    status: str
    progress: int
    result_url: str | None = None
    original_filename: str
    processing_time: float | None = None
    completed_at: float | None = None
    created_at: float
    parameters: dict[str, Any]
    error: str | None = None
    model: str | None = None
    weights: str | None = None
    warning: str | None = None
    # /process/video jobs only: the seed's output_path and what the run did.
    output_path: str | None = None
    outcome: dict[str, Any] | None = None


class Message(BaseModel):
    message: str


@router.post(
    "/upscale",
    response_model=UpscaleAccepted,
    dependencies=[Depends(rate_limited("upscale"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def submit_upscale(
    request: Request,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP, at most 15 MB")],
    scale: Annotated[int, Form(description="2 or 4", json_schema_extra={"enum": [2, 4]})] = 2,
    face_enhance: Annotated[bool, Form(description="restore faces too")] = False,
) -> UpscaleAccepted:
    services = services_of(request)
    await _check_parameters(services, scale, face_enhance)
    data = await read_limited(file, services.settings.max_upload_bytes)
    decoded = await asyncio.to_thread(decode_upload, data, services.settings)
    await _check_capacity(services)
    if face_enhance:
        await services.faces.check_ready(RestoreOptions(upscale=scale, background_enhance=True))
    path = await asyncio.to_thread(services.files.save_upload, data)
    job = await asyncio.to_thread(
        functools.partial(
            services.store.admit,
            "upscale",
            {
                "scale": scale,
                "face_enhance": face_enhance,
                "model": services.settings.upscale_model,
            },
            safe_filename(file.filename),
            str(path),
            max_active=services.settings.max_pending_jobs,
        )
    )
    if job is None:
        services.files.remove(str(path))
        raise _queue_full(services.settings.max_pending_jobs)
    services.queue.enqueue(job.id)
    pixels = decoded.rgb.shape[0] * decoded.rgb.shape[1]
    ahead = await asyncio.to_thread(services.store.count_active)
    return UpscaleAccepted(
        job_id=job.id,
        status="queued",
        message="Image submitted for upscaling",
        estimated_time=_estimate(services, pixels, ahead),
        parameters=UpscaleParameters(scale=scale, face_enhance=face_enhance),
    )


async def _check_parameters(services: Services, scale: int, face_enhance: bool) -> None:
    if scale not in (2, 4):
        raise BadRequest(f"scale must be 2 or 4, got {scale}")
    if face_enhance and not await services.faces.installed_versions():
        raise BadRequest(
            f"face_enhance needs the face restoration model '{FACE_MODEL}', which is not "
            "installed on this server; send face_enhance=false"
        )


async def read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"upload too large: the limit is {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _queue_full(cap: int) -> Overloaded:
    return Overloaded(f"{cap} jobs are already waiting; try again shortly", retry_after=30)


async def _check_capacity(services: Services) -> None:
    """An early refusal before the upload is stored; `admit` makes the binding check."""
    active = await asyncio.to_thread(services.store.count_active)
    if active >= services.settings.max_pending_jobs:
        raise _queue_full(services.settings.max_pending_jobs)
    await services.triton.require_ready(services.upscaler.ensemble)


def safe_filename(name: str | None) -> str:
    """Kept only to be echoed back; never used as a path."""
    cleaned = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in cleaned if ch.isprintable())[:255] or "upload"


def _estimate(services: Services, pixels: int, ahead: int) -> str:
    per_pixel = services.upscale_job.seconds_per_pixel() or DEFAULT_SECONDS_PER_PIXEL
    seconds = per_pixel * pixels
    low = max(1, round(seconds * 0.75))
    high = max(low + 1, round(seconds * 1.5 * max(1, ahead)))
    return f"{low}-{high} seconds"


@router.get(
    "/status/{job_id}",
    response_model=JobStatusResponse,
    response_model_exclude_none=False,
    dependencies=[Depends(rate_limited("status"))],
    responses=errors(404, 429),
)
async def job_status(job_id: str, request: Request) -> JobStatusResponse:
    services = services_of(request)
    job = await _find_job(services, job_id, ("upscale", "swap_video"))
    if job.kind == "swap_video":
        return swap_status(job)
    recorded = (job.outcome or {}).get("synthetic_models")
    synthetic = (
        recorded if recorded is not None else services.upscale_job.synthetic_models(job.parameters)
    )
    return JobStatusResponse(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        result_url=_result_url(request, job),
        original_filename=job.original_filename,
        processing_time=_rounded(job.processing_time),
        completed_at=job.completed_at
        if job.status in ("completed", "failed", "cancelled")
        else None,
        created_at=job.created_at,
        parameters={k: v for k, v in job.parameters.items() if k != "model"},
        error=job.error if job.status in ("failed", "queued") else None,
        model=str(job.parameters.get("model")),
        weights=services.upscale_weights().kind,
        warning=synthetic_warning(synthetic),
    )


def swap_status(job: Job) -> JobStatusResponse:
    """An asynchronous /process/video job, in the same status shape (FaceFusion's API has no
    status route of its own); `output_path` is what /process/video would have answered."""
    recorded = job.outcome or {}
    return JobStatusResponse(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        result_url=f"/download/{job.result_id}" if job.result_id else None,
        output_path=output_path(job.result_id) if job.result_id else None,
        original_filename=job.original_filename,
        processing_time=_rounded(job.processing_time),
        completed_at=job.completed_at if job.status in FINISHED else None,
        created_at=job.created_at,
        parameters=public_parameters(job.parameters),
        error=job.error if job.status in ("failed", "queued") else None,
        model=SWAPPER,
        warning=synthetic_warning(recorded.get("synthetic_models", [])),
        outcome={k: v for k, v in recorded.items() if k != "synthetic_models"} or None,
    )


def _rounded(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def _result_url(request: Request, job: Job) -> str | None:
    if job.status != "completed" or not job.result_id:
        return None
    return f"{base_url(request)}/results/{job.result_id}"


async def _find_job(services: Services, job_id: str, kinds: tuple[str, ...] = ("upscale",)) -> Job:
    """A job of one of `kinds` by id; any other id is a 404 like an unknown one (a stored
    restoration is no job to poll or cancel)."""
    job = await asyncio.to_thread(services.store.get, job_id)
    if job is None or job.kind not in kinds:
        raise NotFound("Job not found")
    return job


@router.delete(
    "/job/{job_id}",
    response_model=Message,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 404, 429),
)
async def cancel_job(job_id: str, request: Request) -> Message:
    services = services_of(request)
    job = await _find_job(services, job_id, ("upscale", "batch", "swap_video"))
    if not await asyncio.to_thread(services.store.cancel, job.id):
        raise BadRequest(f"Job is already {job.status} and cannot be cancelled")
    if job.status == "queued":
        services.files.remove(job.input_path)
    return Message(message="Job cancelled successfully")


@router.get(
    "/results/{result_id}",
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(404, 429),
    response_class=FileResponse,
)
async def download_result(result_id: str, request: Request) -> FileResponse:
    services = services_of(request)
    job = await asyncio.to_thread(services.store.get_by_result, result_id)
    if job is None or job.result_path is None or not Path(job.result_path).is_file():
        raise NotFound("Result not found or expired")
    extension = job.result_path.rsplit(".", 1)[-1]
    stem = job.original_filename.rsplit(".", 1)[0]
    return FileResponse(
        job.result_path,
        media_type=job.result_media_type,
        filename=f"{stem}_upscaled_x{job.parameters.get('scale')}.{extension}",
    )
