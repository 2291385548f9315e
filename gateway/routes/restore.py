"""The GFPGAN restoration API, field for field as its users already call it."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gateway.errors import BadRequest, NotFound, Overloaded
from gateway.faces.service import RestoreOptions
from gateway.faces.triton_sessions import DETECTORS
from gateway.imageio import decode_upload, output_format_for
from gateway.jobs.restorations import store_restoration
from gateway.jobs.store import Job
from gateway.openapi import errors
from gateway.quality import analysis_block, compare_images
from gateway.routes.deps import rate_limited, services_of
from gateway.routes.upscale import read_limited, safe_filename
from gateway.weights import synthetic_warning

router = APIRouter(tags=["restore (GFPGAN API)"])
AVAILABLE_METRICS = ("psnr", "ssim")
# Needs models this server does not run; asked for, they are refused with the list above.
UNAVAILABLE_METRICS = ("lpips", "dists", "arcface_similarity", "niqe", "brisque")
# A batch item restores a whole photo: detection, up to 20 faces and the background.
ESTIMATED_SECONDS_PER_URL = 30


class RestoreResponse(BaseModel):
    status: str
    restoration_id: str
    original_size: tuple[int, int]
    restored_size: tuple[int, int]
    processing_time: float
    download_url: str
    faces_detected: int
    faces_restored: int
    warning: str | None = None


class BatchSettings(BaseModel):
    # A mistyped or unsupported setting is a 400 naming it, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    version: str = "1.4"
    upscale: int = Field(default=2, ge=1, le=4)
    background_enhance: bool = False
    weight: float = Field(default=0.5, ge=0, le=1)
    only_center_face: bool = False
    face_detector_model: str = Field(
        default="mtcnn", json_schema_extra={"enum": list[JsonValue](sorted(DETECTORS))}
    )
    face_detector_score: float = Field(default=0.9, gt=0, le=1)

    def options(self) -> RestoreOptions:
        """The same options /restore takes as form fields."""
        fields = self.model_dump(exclude={"face_detector_model", "face_detector_score"})
        return RestoreOptions(
            **fields, detector=self.face_detector_model, min_score=self.face_detector_score
        )


class BatchRequest(BaseModel):
    image_urls: list[str] = Field(min_length=1)
    settings: BatchSettings = Field(default_factory=BatchSettings)


class BatchItem(BaseModel):
    url: str
    status: Literal["pending", "completed", "failed"]
    restoration_id: str | None = None
    download_url: str | None = None
    faces_detected: int | None = None
    faces_restored: int | None = None
    error: str | None = None
    synthetic_models: list[str] | None = None
    warning: str | None = None


class BatchStatus(BaseModel):
    batch_id: str
    status: str
    progress: int
    total: int
    completed: int
    failed: int
    results: list[BatchItem]
    error: str | None = None
    created_at: float
    completed_at: float | None = None
    warning: str | None = None


class QualityResponse(BaseModel):
    metrics: dict[str, float | None]  # PSNR of identical images is infinite: null
    analysis: dict[str, float | str]
    compared_size: list[int]
    resized_original: bool


class BatchAccepted(BaseModel):
    status: str
    batch_id: str
    estimated_completion: str
    status_url: str


@router.post(
    "/restore",
    response_model=RestoreResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def restore(
    request: Request,
    file: Annotated[UploadFile, File(description="JPEG, PNG or WebP, at most 15 MB")],
    version: Annotated[str, Form(description="GFPGAN version; installed ones only")] = "1.4",
    upscale: Annotated[int, Form(ge=1, le=4, description="final upscale of the whole image")] = 2,
    weight: Annotated[float, Form(ge=0, le=1, description="restored vs original face blend")] = 0.5,
    only_center_face: Annotated[bool, Form()] = False,
    background_enhance: Annotated[bool, Form(description="Real-ESRGAN background")] = False,
    face_detector_model: Annotated[
        str, Form(json_schema_extra={"enum": sorted(DETECTORS)}, description="face detector")
    ] = "mtcnn",
    face_detector_score: Annotated[
        float, Form(gt=0, le=1, description="minimum detection score")
    ] = 0.9,
) -> RestoreResponse:
    services = services_of(request)
    options = RestoreOptions(
        version=version,
        upscale=upscale,
        weight=weight,
        only_center_face=only_center_face,
        background_enhance=background_enhance,
        detector=face_detector_model,
        min_score=face_detector_score,
    )
    await services.faces.check_options(options)
    data = await read_limited(file, services.settings.max_upload_bytes)
    decoded = await asyncio.to_thread(decode_upload, data, services.settings)
    await services.faces.check_ready(options)
    if services.restore_slots.locked():
        raise Overloaded("all restoration slots are busy; try again shortly", retry_after=5)
    started = time.monotonic()
    async with services.restore_slots:
        outcome = await services.faces.restore(decoded.rgb, options)
    fmt = output_format_for(decoded, outscale=upscale)
    job = await asyncio.to_thread(
        store_restoration,
        services.store,
        services.files,
        outcome.image,
        decoded.alpha,
        fmt,
        asdict(options),
        safe_filename(file.filename),
    )
    height, width = decoded.rgb.shape[:2]
    out_height, out_width = outcome.image.shape[:2]
    warning = synthetic_warning(services.faces.synthetic_models(options))
    return RestoreResponse(
        status="success",
        restoration_id=job.id,
        original_size=(width, height),
        restored_size=(out_width, out_height),
        processing_time=round(time.monotonic() - started, 3),
        download_url=f"/download/{job.id}",
        faces_detected=outcome.detected_count,
        faces_restored=outcome.restored_count,
        warning=warning,
    )


@router.post(
    "/batch",
    response_model=BatchAccepted,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 429, 502, 503, 504),
)
async def submit_batch(body: BatchRequest, request: Request) -> BatchAccepted:
    services = services_of(request)
    if len(body.image_urls) > services.settings.batch_max_urls:
        raise BadRequest(f"at most {services.settings.batch_max_urls} image_urls per batch")
    options = body.settings.options()
    await services.faces.check_options(options)
    await services.faces.check_ready(options)
    parameters = {"image_urls": body.image_urls, "settings": asdict(options)}
    job = await asyncio.to_thread(
        functools.partial(
            services.store.admit,
            "batch",
            parameters,
            "batch",
            "",
            max_active=services.settings.max_pending_jobs,
        )
    )
    if job is None:
        raise Overloaded("too many jobs are waiting; try again shortly", retry_after=30)
    services.queue.enqueue(job.id)
    finish = datetime.now(UTC) + timedelta(seconds=ESTIMATED_SECONDS_PER_URL * len(body.image_urls))
    return BatchAccepted(
        status="accepted",
        batch_id=job.id,
        estimated_completion=finish.isoformat(timespec="seconds").replace("+00:00", "Z"),
        status_url=f"/batch/{job.id}/status",
    )


@router.get(
    "/batch/{batch_id}/status",
    dependencies=[Depends(rate_limited("status"))],
    response_model=BatchStatus,
    response_model_exclude_none=True,
    responses=errors(404, 429),
)
async def batch_status(batch_id: str, request: Request) -> dict[str, Any]:
    services = services_of(request)
    job = await asyncio.to_thread(services.store.get, batch_id)
    if job is None or job.kind != "batch":
        raise NotFound("Batch not found")
    return describe_batch(job)


def describe_batch(job: Job) -> dict[str, Any]:
    results: list[dict[str, Any]] = (job.outcome or {}).get("results", [])
    done = {r["url"] for r in results}
    pending = [
        {"url": url, "status": "pending"} for url in job.parameters["image_urls"] if url not in done
    ]
    synthetic = sorted({name for r in results for name in r.get("synthetic_models", ())})
    return {
        "batch_id": job.id,
        "status": job.status,
        "progress": job.progress,
        "total": len(job.parameters["image_urls"]),
        "completed": sum(r["status"] == "completed" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "results": results + pending,
        "error": job.error,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "warning": synthetic_warning(synthetic),
    }


@router.post(
    "/metrics",
    response_model=QualityResponse,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429),
)
async def quality_metrics(
    request: Request,
    original: Annotated[UploadFile, File()],
    restored: Annotated[UploadFile, File()],
    metrics: Annotated[list[str] | None, Form(alias="metrics[]")] = None,
) -> dict[str, Any]:
    """PSNR and SSIM of `restored` against `original`, and the seed's `analysis` block."""
    services = services_of(request)
    wanted = [m.lower() for m in metrics] if metrics else list(AVAILABLE_METRICS)
    missing = [m for m in wanted if m not in AVAILABLE_METRICS]
    if missing:
        raise BadRequest(
            f"metrics {', '.join(m[:40] for m in missing[:10])} are not available on this "
            f"server (their models are not installed); available: {', '.join(AVAILABLE_METRICS)}"
        )
    limit = services.settings.max_upload_bytes
    first_bytes, second_bytes = (
        await read_limited(original, limit),
        await read_limited(restored, limit),
    )
    first = await asyncio.to_thread(decode_upload, first_bytes, services.settings)
    second = await asyncio.to_thread(decode_upload, second_bytes, services.settings)
    report = await asyncio.to_thread(compare_images, first.rgb, second.rgb)
    values = report.metrics()
    return {
        "metrics": {name: values[name] for name in wanted},
        "analysis": analysis_block(report),
        "compared_size": list(report.compared_size),
        "resized_original": report.resized_original,
    }
