"""The Image Context Extractor's service routes (seed 003): health, status, config, metrics,
info, and model status / preload answered from what Triton has loaded."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel

from gateway import __version__
from gateway.context.library import ImageLibrary
from gateway.openapi import errors
from gateway.routes.deps import services_of
from gateway.services import Services
from gateway.system import metrics_system

router = APIRouter(prefix="/api/v1", tags=["service (Image Context Extractor API)"])
COLLECTION_NAME = "image_contexts"
# The seed's model names → which of the context models each stands for. The seed's
# "processors" (tokenisers, image preprocessing) live inside Triton's BLS models (the text
# tokenisers) or in the gateway (resizing), so each is ready when the model it feeds is.
SEED_MODELS = {
    "blip_processor": "blip_model",
    "blip_model": "blip_model",
    "clip_processor": "clip_text_model",
    "clip_model": "clip_model",
    "sentence_transformer": "sentence_transformer",
    "object_detector": "object_detector",
}


class ContextHealth(BaseModel):
    status: str
    version: str
    database_connected: bool
    models_loaded: bool
    uptime: float
    stats: dict[str, Any]
    warning: str | None = None


class ModelStatus(BaseModel):
    models: dict[str, bool]
    served_by: dict[str, str]
    synthetic: dict[str, bool]
    device: str
    timestamp: str


class PreloadResponse(BaseModel):
    success: bool
    timings: dict[str, float]
    device: str
    timestamp: str
    errors: dict[str, str] = {}
    not_installed: list[str] = []
    warning: str | None = None


def now_iso() -> str:
    return dt.datetime.now().isoformat()


async def ready_models(services: Services) -> dict[str, bool]:
    """Triton's readiness of each context model (asking never loads one)."""
    names = services.library.models.names()
    answers = await asyncio.gather(*(services.triton.is_model_ready(n) for n in names.values()))
    return dict(zip(names, answers, strict=True))


def device_of(services: Services) -> str:
    catalog = services.triton.catalog
    found = {
        execution
        for model in services.library.models.names().values()
        for execution in catalog.executions(model)
    }
    return "cuda" if found & {"cuda", "tensorrt"} else "cpu"


def store_stats(services: Services, library: ImageLibrary) -> dict[str, Any]:
    settings = services.settings
    where = (
        str(settings.vector_database_path)
        if settings.vector_store == "sqlite"
        else "postgresql (pgvector)"
    )
    return {
        "total_images": library.store.count(),
        "collection_name": COLLECTION_NAME,
        "db_path": where,
        "vector_store": settings.vector_store,
    }


@router.get("/health", response_model=ContextHealth, response_model_exclude_none=True)
async def health(request: Request) -> dict[str, Any]:
    services = services_of(request)
    library = services.library
    try:
        stats = await asyncio.to_thread(store_stats, services, library)
        connected = True
    except Exception:  # any store failure means "not connected" here, never a 500
        stats, connected = {"collection_name": COLLECTION_NAME}, False
    ready = await ready_models(services)
    loaded = all(ready.values())
    return {
        "status": "healthy" if connected and loaded else "degraded",
        "version": __version__,
        "database_connected": connected,
        "models_loaded": loaded,
        "uptime": round(time.time() - services.started_at, 2),
        "stats": stats,
        "warning": library.warning(),
    }


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    """Host CPU, memory and disk, the store, Triton and the models."""
    services = services_of(request)
    library = services.library
    return {
        "status": "running",
        "version": __version__,
        "uptime": round(time.time() - services.started_at, 2),
        "system": await asyncio.to_thread(metrics_system, services.settings.data_dir),
        "database": await asyncio.to_thread(store_stats, services, library),
        "models": await ready_models(services),
        "triton_ready": services.triton.readiness()["server_ready"],
        "timestamp": now_iso(),
    }


@router.get("/config")
async def config(request: Request) -> dict[str, Any]:
    """The settings that shape answers; no secrets (the PostgreSQL URL is never shown)."""
    services = services_of(request)
    settings = services.settings
    return {
        "media_roots": [str(root) for root in services.library.roots.roots],
        "vector_store": settings.vector_store,
        "collection_name": COLLECTION_NAME,
        "batch_images": settings.context_batch_images,
        "object_score_threshold": settings.context_object_score,
        "max_directory_files": settings.context_max_directory_files,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_input_pixels": settings.max_input_pixels,
        "models": services.library.models.names(),
        "device": device_of(services),
        "websocket": {
            "max_connections": settings.ws_max_connections,
            "max_message_bytes": settings.ws_max_message_bytes,
            "queue_length": settings.ws_queue_length,
        },
    }


@router.get("/metrics")
async def metrics(request: Request) -> dict[str, Any]:
    services = services_of(request)
    totals = await asyncio.to_thread(services.store.totals)
    tasks = await asyncio.to_thread(services.store.list_kind, "context_directory", 1000)
    by_status: dict[str, int] = {}
    for task in tasks:
        by_status[task.status] = by_status.get(task.status, 0) + 1
    return {
        "timestamp": now_iso(),
        "uptime": round(time.time() - services.started_at, 2),
        "images": await asyncio.to_thread(services.library.store.count),
        "tasks": by_status,
        "jobs": totals.by_status,
        "websocket": dataclasses.asdict(services.ws_hub.stats()),
        "system": await asyncio.to_thread(metrics_system, services.settings.data_dir),
    }


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    services = services_of(request)
    return {
        "name": "Image Context Extractor API (served by Facet)",
        "version": __version__,
        "description": "Captions (BLIP), objects (NanoDet COCO-80), CLIP and sentence "
        "embeddings served by Triton; search, duplicates, directory tasks, WebSockets",
        "docs_url": "/docs",
        "redoc_url": "/redoc",
        "models": services.library.models.names(),
        "endpoints": sorted(
            {
                route.path  # type: ignore[attr-defined]
                for route in request.app.routes
                if getattr(route, "path", "").startswith(("/api/v1", "/ws"))
            }
        ),
    }


@router.get("/models/status", response_model=ModelStatus)
async def models_status(request: Request) -> dict[str, Any]:
    services = services_of(request)
    names = services.library.models.names()
    ready = await ready_models(services)
    catalog = services.triton.catalog
    return {
        "models": {seed: ready[ours] for seed, ours in SEED_MODELS.items()},
        "served_by": {seed: names[ours] for seed, ours in SEED_MODELS.items()},
        "synthetic": {
            seed: catalog.weights(names[ours]).synthetic for seed, ours in SEED_MODELS.items()
        },
        "device": device_of(services),
        "timestamp": now_iso(),
    }


def warm_up_calls(library: ImageLibrary) -> dict[str, Callable[[], Awaitable[object]]]:
    """One small real inference per model (Triton keeps models loaded; this warms caches,
    threads and the dynamic batchers' first executions)."""
    image = np.full((64, 64, 3), 128, np.uint8)
    models = library.models
    return {
        "sentence_transformer": lambda: models.text.embed(["warm-up"]),
        "blip_model": lambda: models.captioner.caption([image]),
        "clip_processor": lambda: models.clip.embed_texts(["warm-up"]),
        "clip_model": lambda: models.clip.embed_images([image]),
        "object_detector": lambda: models.objects.detect([image], min_score=0.99),
    }


@router.post("/models/preload", response_model=PreloadResponse, responses=errors(503, context=True))
async def preload(request: Request) -> dict[str, Any]:
    """Times one warm-up inference per model, in turn; a model that fails is listed under
    `errors` and the answer is `success: false`; optional models Triton does not have (BLIP,
    CLIP) are listed under `not_installed`."""
    services = services_of(request)
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    installed = services.library.installed()
    skipped = [] if installed.captioner else ["blip_model"]
    skipped += [] if installed.clip else ["clip_processor", "clip_model"]
    started = time.perf_counter()
    for name, call in warm_up_calls(services.library).items():
        if name in skipped:
            continue
        begun = time.perf_counter()
        try:
            await call()
        except Exception as exc:  # reported per model; the others still warm up
            failures[name] = getattr(exc, "detail", None) or type(exc).__name__
            continue
        timings[name] = round(time.perf_counter() - begun, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    return {
        "success": not failures,
        "timings": timings,
        "device": device_of(services),
        "timestamp": now_iso(),
        "errors": failures,
        "not_installed": skipped,
        "warning": services.library.warning(),
    }
