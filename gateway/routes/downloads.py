"""/download/{name}: the one download route two seeds share. The GFPGAN API downloads a
restoration by its `restoration_id`; the FaceFusion API downloads an output by its file name
(`<uuid>.<ext>`, the last part of `output_path`), optionally deleting it once sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from gateway.errors import NotFound
from gateway.jobs.store import Job, JobStore
from gateway.openapi import errors
from gateway.routes.deps import rate_limited, services_of
from gateway.storage import FileStore
from gateway.swap.outputs import SWAP_KINDS

router = APIRouter(tags=["downloads"])


@router.get(
    "/download/{name}",
    response_class=FileResponse,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(404, 429),
)
async def download(
    name: str,
    request: Request,
    cleanup: Annotated[
        bool, Query(description="FaceFusion outputs: delete the file once it has been sent")
    ] = False,
) -> FileResponse:
    """A restoration (by restoration_id) or a processed output (by its file name)."""
    services = services_of(request)
    restoration = await asyncio.to_thread(services.store.get, name)
    if restoration is not None and restoration.kind == "restore":
        return restored_file(restoration)
    output = await asyncio.to_thread(services.store.get_by_result, name)
    if output is None or output.kind not in SWAP_KINDS or not is_file(output.result_path):
        raise NotFound("File not found or expired")
    assert output.result_path is not None
    after = BackgroundTask(forget, services.store, services.files, output) if cleanup else None
    return FileResponse(
        output.result_path, media_type=output.result_media_type, filename=name, background=after
    )


def restored_file(job: Job) -> FileResponse:
    if not is_file(job.result_path):
        raise NotFound("Restoration not found or expired")
    assert job.result_path is not None
    extension = job.result_path.rsplit(".", 1)[-1]
    stem = job.original_filename.rsplit(".", 1)[0]
    return FileResponse(
        job.result_path, media_type=job.result_media_type, filename=f"{stem}_restored.{extension}"
    )


def is_file(path: str | None) -> bool:
    return bool(path) and Path(path or "").is_file()


def forget(store: JobStore, files: FileStore, job: Job) -> None:
    """Delete an output and its record (after the response has been sent)."""
    files.remove(job.result_path)
    store.delete(job.id)
