"""The Image Context Extractor's image routes (seed 003), field for field: process a
server-side file, upload, info, download, list or search, delete."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.context.library import ImageLibrary
from gateway.context.paths import IMAGE_SUFFIXES
from gateway.context.ranking import parse_objects
from gateway.errors import BadRequest, Conflict
from gateway.imageio import decode_upload
from gateway.openapi import errors
from gateway.routes.deps import rate_limited, services_of
from gateway.routes.upscale import read_limited, safe_filename
from gateway.vectors.store import VectorRecord
from gateway.ws.events import image_processed

router = APIRouter(prefix="/api/v1", tags=["images (Image Context Extractor API)"])
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_OFFSET = 2**62  # the store's OFFSET is a 64-bit SQL integer; any larger one lists nothing


class ProcessImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_path: str = Field(description="a file inside the media roots (FACET_MEDIA_ROOTS)")
    force_reprocess: bool = False


class ImageInfo(BaseModel):
    id: str
    path: str
    filename: str
    size: list[int]
    file_size: int
    format: str
    caption: str
    objects: list[str]
    warning: str | None = Field(default=None, description="set when synthetic weights ran")


class ImageDetails(ImageInfo):
    content_hash: str | None = None
    detections: list[dict[str, Any]] = []
    created_at: float
    updated_at: float


class SearchResult(ImageInfo):
    score: float | None = None
    distance: float | None = None


class ProcessImageResponse(BaseModel):
    success: bool
    image_id: str
    message: str
    image_info: ImageInfo
    processing_time: float
    was_duplicate: bool


class UploadResponse(BaseModel):
    success: bool
    filename: str
    file_path: str
    file_size: int
    image_id: str | None
    message: str
    image_info: ImageInfo | None = None
    warning: str | None = None


class DeleteResponse(BaseModel):
    success: bool
    image_id: str
    message: str
    file_deleted: bool


def library_of(request: Request) -> ImageLibrary:
    library: ImageLibrary = services_of(request).library
    return library


def image_info(library: ImageLibrary, record: VectorRecord) -> dict[str, Any]:
    meta = record.metadata
    synthetic = meta.get("synthetic_models") or []
    return {
        "id": record.id,
        "path": record.path or "",
        "filename": meta.get("filename") or Path(record.path or "").name,
        "size": list(meta.get("size") or [0, 0]),
        "file_size": int(meta.get("file_size") or 0),
        "format": meta.get("format") or "",
        "caption": record.caption or "",
        "objects": list(record.objects),
        "warning": library.warning(synthetic),
    }


@router.post(
    "/images/process",
    response_model=ProcessImageResponse,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 404, 413, 415, 429, 502, 503, 504, context=True),
)
async def process_image(body: ProcessImageRequest, request: Request) -> dict[str, Any]:
    """Caption, objects and embeddings of one server-side image, stored for search."""
    library = library_of(request)
    started = time.perf_counter()
    outcome = await library.process_file(body.image_path, force=body.force_reprocess)
    message = (
        "Image already processed (unchanged)" if outcome.skipped else "Image processed successfully"
    )
    if not outcome.skipped:
        services_of(request).ws_hub.publish(
            "processing",
            image_processed(outcome.record.id, filename=Path(outcome.record.path or "").name),
        )
    return {
        "success": True,
        "image_id": outcome.record.id,
        "message": message,
        "image_info": image_info(library, outcome.record),
        "processing_time": round(time.perf_counter() - started, 3),
        "was_duplicate": outcome.was_duplicate,
    }


@router.post(
    "/images/upload",
    response_model=UploadResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 409, 413, 415, 429, 502, 503, 504, context=True),
)
async def upload_image(
    request: Request,
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP image")],
    process_immediately: Annotated[bool, Form()] = True,
    overwrite: Annotated[bool, Form()] = False,
    upload_dir: Annotated[str, Form(description="inside the first media root")] = "uploads",
) -> dict[str, Any]:
    library = library_of(request)
    folder = library.roots.directory_for_writing(upload_dir)
    name = upload_name(file.filename)
    data = await read_limited(file, library.settings.max_upload_bytes)
    if not data:
        raise BadRequest("file: the upload is empty")
    # Refused before anything is written: a bad image never replaces a stored one.
    await asyncio.to_thread(decode_upload, data, library.settings)
    target = folder / name
    await asyncio.to_thread(write_upload, target, data, overwrite)
    shown = library.roots.shown(target)
    if not process_immediately:
        return {
            "success": True,
            "filename": name,
            "file_path": shown,
            "file_size": len(data),
            "image_id": None,
            "message": "Image uploaded",
        }
    outcome = await library.process_file(str(target), force=overwrite)
    info = image_info(library, outcome.record)
    return {
        "success": True,
        "filename": name,
        "file_path": shown,
        "file_size": len(data),
        "image_id": outcome.record.id,
        "message": "Image uploaded and processed successfully",
        "image_info": info,
        "warning": info["warning"],
    }


# In UTF-8 bytes, as NAME_MAX (255) counts them: room for the temporary name's prefix and suffix.
MAX_NAME_BYTES = 200


def upload_name(filename: str | None) -> str:
    """The upload's own name, kept as the file's name: its last path segment, printable, not
    hidden, with an image suffix (so a directory scan finds it again)."""
    name = safe_filename(filename)
    if name.startswith("."):
        raise BadRequest("file: give the upload a filename that does not start with a dot")
    if len(name.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        raise BadRequest(f"file: the filename is over {MAX_NAME_BYTES} bytes (UTF-8)")
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        raise BadRequest(f"file: the filename must end in one of {', '.join(IMAGE_SUFFIXES)}")
    return name


def write_upload(target: Path, data: bytes, overwrite: bool) -> None:
    """Written under a temporary name, then moved: a reader never sees half a file, and
    without `overwrite` an existing file is never replaced (link fails when it exists)."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    if target.is_dir():  # neither replaced nor linked over: overwrite would not help
        raise Conflict(f"{target.name} is a directory there; give the upload another filename")
    temporary.write_bytes(data)
    try:
        if overwrite:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise Conflict(
                    f"file exists: {target.name} (send overwrite=true to replace it)"
                ) from None
    finally:
        temporary.unlink(missing_ok=True)


@router.get(
    "/images/info/{image_id}", response_model=ImageDetails, responses=errors(404, context=True)
)
async def image_details(image_id: str, request: Request) -> dict[str, Any]:
    library = library_of(request)
    record = await asyncio.to_thread(library.get, image_id)
    return image_info(library, record) | {
        "content_hash": record.content_hash,
        "detections": record.metadata.get("detections") or [],
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


@router.get(
    "/images/download/{image_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}}, **errors(403, 404, context=True)},
)
async def download_image(image_id: str, request: Request) -> FileResponse:
    library = library_of(request)
    path = await asyncio.to_thread(library.file_of, image_id)
    record = await asyncio.to_thread(library.get, image_id)
    media_type = MEDIA_TYPES.get(str(record.metadata.get("format")), "application/octet-stream")
    return FileResponse(path, media_type=media_type, filename=path.name)


@router.get(
    "/images/",
    response_model=list[SearchResult],
    response_model_exclude_none=True,
    responses=errors(400, 502, 503, 504, context=True),
)
async def list_or_search(
    request: Request,
    query: Annotated[str | None, Query(max_length=2000)] = None,
    objects: Annotated[str | None, Query(max_length=2000, description="e.g. cat,dog")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    min_score: Annotated[float | None, Query(ge=-1, le=1)] = None,
    include_metadata: bool = True,
) -> list[dict[str, Any]]:
    """List (no `query`) in the order images were stored, or search by text: the query's
    MiniLM embedding against each image's caption and objects, and its CLIP text embedding
    against the CLIP image embedding, combined as the README's architecture notes say."""
    library = library_of(request)
    names = parse_objects(objects)
    if query is None:
        records = await asyncio.to_thread(
            library.store.list, limit=limit, offset=offset, objects=names
        )
        return [image_info(library, record) for record in records]
    hits = await library.search(query, limit=limit, min_score=min_score, objects=names)
    results = []
    for record, score, distance in hits:
        item = image_info(library, record)
        if include_metadata:
            item |= {"score": round(score, 6), "distance": round(distance, 6)}
        results.append(item)
    return results


@router.delete(
    "/images/{image_id}", response_model=DeleteResponse, responses=errors(404, context=True)
)
async def delete_image(
    image_id: str, request: Request, delete_file: bool = False
) -> dict[str, Any]:
    """Removes the record and both of its vectors (and the file when asked, if it is inside
    the media roots); nothing of it remains in the store."""
    library = library_of(request)
    _, file_deleted = await asyncio.to_thread(library.delete, image_id, delete_file=delete_file)
    return {
        "success": True,
        "image_id": image_id,
        "message": "Image deleted" + (" with its file" if file_deleted else ""),
        "file_deleted": file_deleted,
    }
