"""/download/{name}: the one download route two seeds share. The GFPGAN API downloads a
restoration by its `restoration_id`; the FaceFusion API downloads an output by its file name
(`<uuid>.<ext>`, the last part of `output_path`), optionally deleting it once sent."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, BinaryIO

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

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
        return await restored_file(restoration)
    output = await asyncio.to_thread(services.store.get_by_result, name)
    if output is None or output.kind not in SWAP_KINDS or not output.result_path:
        raise NotFound("File not found or expired")
    # Opened now: another download's cleanup=true, DELETE /output or expiry may delete the file
    # before this answer is sent, and the open handle still reads it whole.
    handle = await asyncio.to_thread(open_output, output.result_path)
    if handle is None:
        raise NotFound("File not found or expired")
    if cleanup:
        # Forgotten before the answer goes out, not in a background task after it: a client that
        # asks again as soon as its download ends must already get 404. The open handle still
        # reads the unlinked file whole.
        await asyncio.to_thread(forget, services.store, services.files, output)
    return HeldFileResponse(handle, media_type=output.result_media_type, filename=name)


def open_output(path: str) -> BinaryIO | None:
    """The file at `path` opened for reading; None when it is gone (or not a regular file)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (HeldFileResponse closes it)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        return None
    return handle


class HeldFileResponse(FileResponse):
    """A FileResponse over a file opened before the response starts: Starlette's own opens the
    path again while sending (after the status line is out), so a file deleted meanwhile
    was a 500 or a body cut off after its headers. Range requests and HEAD work as before."""

    def __init__(self, handle: BinaryIO, **options: Any) -> None:
        self._handle = handle
        super().__init__(handle.name, stat_result=os.fstat(handle.fileno()), **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:  # the server would open the path itself
            others = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
            scope = {**scope, "extensions": others}
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._handle.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        yield anyio.wrap_file(self._handle)  # closed by __call__, once the answer is sent


async def restored_file(job: Job) -> FileResponse:
    handle = await asyncio.to_thread(open_output, job.result_path) if job.result_path else None
    if handle is None or job.result_path is None:
        raise NotFound("Restoration not found or expired")
    extension = job.result_path.rsplit(".", 1)[-1]
    stem = job.original_filename.rsplit(".", 1)[0]
    return HeldFileResponse(
        handle, media_type=job.result_media_type, filename=f"{stem}_restored.{extension}"
    )


def forget(store: JobStore, files: FileStore, job: Job) -> None:
    """Delete an output and its record."""
    files.remove(job.result_path)
    store.delete(job.id)
