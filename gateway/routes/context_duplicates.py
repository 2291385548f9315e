"""The Image Context Extractor's duplicate routes (seed 003): exact (same bytes) and near
(CLIP image cosine ≥ threshold) duplicates, grouped; compare two files; remove duplicates
(a dry run unless asked)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.context.duplicates import (
    DEFAULT_CHECK_THRESHOLD,
    DEFAULT_REMOVE_THRESHOLD,
    DuplicateGroup,
)
from gateway.context.library import ImageLibrary, image_id_for
from gateway.errors import BadRequest
from gateway.openapi import errors
from gateway.routes.context_directories import directory_images
from gateway.routes.context_images import library_of
from gateway.routes.deps import rate_limited

router = APIRouter(prefix="/api/v1", tags=["duplicates (Image Context Extractor API)"])
Threshold = Annotated[float, Field(ge=-1.0, le=1.0)]


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_path: str | None = None
    directory_path: str | None = None
    similarity_threshold: Threshold = DEFAULT_CHECK_THRESHOLD
    recursive: bool = False


class Group(BaseModel):
    representative_id: str
    duplicate_ids: list[str]
    similarity_scores: list[float]
    paths: list[str]


class CheckResponse(BaseModel):
    success: bool
    total_images: int
    duplicate_groups: list[Group]
    total_duplicates: int
    check_time: float
    message: str
    warning: str | None = None


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image1_path: str
    image2_path: str
    similarity_threshold: Threshold = DEFAULT_CHECK_THRESHOLD


class CompareResponse(BaseModel):
    success: bool
    image1_path: str
    image2_path: str
    similarity: float
    exact_match: bool
    is_duplicate: bool
    clip_similarity: float
    text_similarity: float
    captions: list[str]
    objects: list[list[str]]
    comparison_time: float
    warning: str | None = None


class RemoveResponse(BaseModel):
    success: bool
    dry_run: bool
    duplicate_groups: list[Group]
    removed_ids: list[str]
    removed_count: int
    message: str
    warning: str | None = None


def check_body(
    library: ImageLibrary, groups: list[DuplicateGroup], total: int, started: float
) -> dict[str, Any]:
    duplicates = sum(len(group.duplicate_ids) for group in groups)
    return {
        "success": True,
        "total_images": total,
        "duplicate_groups": [dataclasses.asdict(group) for group in groups],
        "total_duplicates": duplicates,
        "check_time": round(time.perf_counter() - started, 3),
        "message": f"Found {len(groups)} duplicate groups with {duplicates} duplicate images",
        "warning": library.duplicates_warning(),
    }


async def _indexed_directory(
    library: ImageLibrary, directory_path: str, recursive: bool
) -> list[str]:
    """The ids of the directory's images, processing those not stored yet."""
    directory = library.roots.existing_directory(directory_path)
    paths = await asyncio.to_thread(directory_images, library, directory, recursive)
    await library.process_paths(paths, force=False)
    return [image_id_for(path) for path in paths]


@router.post(
    "/duplicates/check",
    response_model=CheckResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 404, 429, 502, 503, 504, context=True),
)
async def check_duplicates(body: CheckRequest, request: Request) -> dict[str, Any]:
    """Within `directory_path` (processed first where needed) or the whole library; with
    `image_path`, only that image's group."""
    library = library_of(request)
    started = time.perf_counter()
    within = None
    if body.directory_path is not None:
        within = await _indexed_directory(library, body.directory_path, body.recursive)
    around = None
    if body.image_path is not None:
        around = (await library.process_file(body.image_path, force=False)).record.id
        if within is not None and around not in within:
            within.append(around)
    groups = await asyncio.to_thread(
        library.duplicate_groups, body.similarity_threshold, within=within, around=around
    )
    total = len(within) if within is not None else await asyncio.to_thread(library.store.count)
    return check_body(library, groups, total, started)


@router.get(
    "/duplicates/check-image",
    response_model=CheckResponse,
    response_model_exclude_none=True,
    responses=errors(400, 403, 404, 502, 503, 504, context=True),
)
async def check_image(
    request: Request,
    image_id: Annotated[str | None, Query(max_length=64)] = None,
    image_path: Annotated[str | None, Query(max_length=4096)] = None,
    similarity_threshold: Annotated[float, Query(ge=-1, le=1)] = DEFAULT_CHECK_THRESHOLD,
) -> dict[str, Any]:
    """The duplicates of one stored image (by `image_id`) or file (by `image_path`)."""
    library = library_of(request)
    started = time.perf_counter()
    if (image_id is None) == (image_path is None):
        raise BadRequest("give exactly one of image_id and image_path")
    if image_path is not None:
        image_id = (await library.process_file(image_path, force=False)).record.id
    assert image_id is not None
    await asyncio.to_thread(library.get, image_id)
    groups = await asyncio.to_thread(
        library.duplicate_groups, similarity_threshold, around=image_id
    )
    total = await asyncio.to_thread(library.store.count)
    return check_body(library, groups, total, started)


@router.get(
    "/duplicates/check-directory",
    response_model=CheckResponse,
    response_model_exclude_none=True,
    responses=errors(400, 403, 404, 502, 503, 504, context=True),
)
async def check_directory(
    request: Request,
    directory_path: Annotated[str, Query(max_length=4096)],
    recursive: bool = False,
    similarity_threshold: Annotated[float, Query(ge=-1, le=1)] = DEFAULT_CHECK_THRESHOLD,
) -> dict[str, Any]:
    library = library_of(request)
    started = time.perf_counter()
    within = await _indexed_directory(library, directory_path, recursive)
    groups = await asyncio.to_thread(library.duplicate_groups, similarity_threshold, within=within)
    return check_body(library, groups, len(within), started)


@router.post(
    "/duplicates/compare",
    response_model=CompareResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(403, 404, 413, 415, 429, 502, 503, 504, context=True),
)
async def compare_images(body: CompareRequest, request: Request) -> dict[str, Any]:
    """Two files compared without storing either: CLIP image cosine (the duplicate measure),
    the sentence similarity of their captions and objects, and whether the bytes are equal."""
    library = library_of(request)
    started = time.perf_counter()
    first = library.roots.existing_file(body.image1_path, field="image1_path")
    second = library.roots.existing_file(body.image2_path, field="image2_path")
    found = await library.compare(first, second)
    similarity = 1.0 if found["exact_match"] else found["clip_similarity"]
    # Without a real CLIP only the same bytes make a duplicate (see near_duplicates_checked).
    near = library.near_duplicates_checked() and similarity >= body.similarity_threshold
    return found | {
        "success": True,
        "image1_path": str(first),
        "image2_path": str(second),
        "similarity": similarity,
        "is_duplicate": found["exact_match"] or near,
        "comparison_time": round(time.perf_counter() - started, 3),
        "warning": library.duplicates_warning(),
    }


@router.delete(
    "/duplicates/remove-duplicates",
    response_model=RemoveResponse,
    response_model_exclude_none=True,
    responses=errors(400, context=True),
)
async def remove_duplicates(
    request: Request,
    similarity_threshold: Annotated[float, Query(ge=-1, le=1)] = DEFAULT_REMOVE_THRESHOLD,
    dry_run: bool = True,
    keep_first: bool = True,
    delete_files: bool = False,
) -> dict[str, Any]:
    """Deletes every duplicate but one per group (the first stored with `keep_first`, else the
    last); `dry_run` (the default) only says which it would delete."""
    library = library_of(request)
    groups, removed = await asyncio.to_thread(
        library.remove_duplicates,
        similarity_threshold,
        dry_run=dry_run,
        keep_first=keep_first,
        delete_files=delete_files,
    )
    verb = "Would remove" if dry_run else "Removed"
    return {
        "success": True,
        "dry_run": dry_run,
        "duplicate_groups": [dataclasses.asdict(group) for group in groups],
        "removed_ids": removed,
        "removed_count": len(removed),
        "message": f"{verb} {len(removed)} duplicate images from {len(groups)} groups",
        "warning": library.duplicates_warning(),
    }
