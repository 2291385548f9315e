"""The Image Context Extractor's directory routes (seed 003): process a server-side directory
now or as a durable background task, scan it, follow tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from gateway.context.directory_task import KIND, directory_result, task_view
from gateway.context.library import ImageLibrary
from gateway.context.paths import image_files
from gateway.errors import NotFound, Overloaded
from gateway.openapi import errors
from gateway.routes.context_images import library_of
from gateway.routes.deps import rate_limited, services_of

router = APIRouter(prefix="/api/v1", tags=["directories (Image Context Extractor API)"])


class DirectoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory_path: str
    force_reprocess: bool = False
    recursive: bool = False


class DirectoryResponse(BaseModel):
    success: bool
    total_files: int
    processed: int
    skipped: int
    failed: int
    processed_ids: list[str]
    failed_files: list[str]
    failures: dict[str, str]
    processing_time: float
    message: str
    warning: str | None = None


class TaskAccepted(BaseModel):
    task_id: str
    status: str
    message: str


class TaskStatus(BaseModel):
    task_id: str
    status: str
    progress: float
    message: str
    result: dict[str, Any] | None
    error: str | None
    created_at: str | None
    updated_at: str | None
    directory_path: str | None = None


class ScanResponse(BaseModel):
    success: bool
    directory_path: str
    recursive: bool
    total_files: int
    files: list[str]


def directory_images(library: ImageLibrary, directory: Path, recursive: bool) -> list[Path]:
    return list(
        image_files(
            library.roots,
            directory,
            recursive=recursive,
            limit=library.settings.context_max_directory_files,
        )
    )


@router.post(
    "/directories/process",
    response_model=DirectoryResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 404, 429, 502, 503, 504, context=True),
)
async def process_directory(body: DirectoryRequest, request: Request) -> dict[str, Any]:
    library = library_of(request)
    directory = library.roots.existing_directory(body.directory_path)
    paths = await asyncio.to_thread(directory_images, library, directory, body.recursive)
    outcome = await library.process_paths(paths, force=body.force_reprocess)
    return directory_result(outcome, library.warning())


@router.post(
    "/directories/process-async",
    response_model=TaskAccepted,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 404, 429, 503, context=True),
)
async def process_directory_async(body: DirectoryRequest, request: Request) -> dict[str, Any]:
    services = services_of(request)
    library = services.library
    directory = library.roots.existing_directory(body.directory_path)
    active = await asyncio.to_thread(services.store.count_active)
    if active >= services.settings.max_pending_jobs:
        raise Overloaded(f"{active} jobs are already waiting; try again shortly", retry_after=30)
    job = await asyncio.to_thread(
        services.directory_task.submit,
        directory,
        recursive=body.recursive,
        force=body.force_reprocess,
    )
    services.queue.enqueue(job.id)
    return {
        "task_id": job.id,
        "status": "queued",
        "message": "Directory processing started in background",
    }


@router.get(
    "/directories/scan", response_model=ScanResponse, responses=errors(400, 403, 404, context=True)
)
async def scan_directory(
    request: Request,
    directory_path: Annotated[str, Query(max_length=4096)],
    recursive: bool = False,
) -> dict[str, Any]:
    library = library_of(request)
    directory = library.roots.existing_directory(directory_path)
    paths = await asyncio.to_thread(directory_images, library, directory, recursive)
    return {
        "success": True,
        "directory_path": str(directory),
        "recursive": recursive,
        "total_files": len(paths),
        "files": [str(path) for path in paths],
    }


@router.get(
    "/directories/task/{task_id}", response_model=TaskStatus, responses=errors(404, context=True)
)
async def task_status(task_id: str, request: Request) -> dict[str, Any]:
    services = services_of(request)
    job = await asyncio.to_thread(services.store.get, task_id)
    if job is None or job.kind != KIND:
        raise NotFound(f"no task with id '{task_id}'")
    return task_view(job)


@router.get("/directories/tasks", response_model=list[TaskStatus])
async def list_tasks(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    services = services_of(request)
    jobs = await asyncio.to_thread(services.store.list_kind, KIND, limit)
    return [task_view(job) for job in jobs]
