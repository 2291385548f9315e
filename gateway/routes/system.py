"""Root redirect, health, JSON metrics (the seed's) and Prometheus metrics (ours)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from gateway import __version__
from gateway.openapi import RETRY_AFTER, errors
from gateway.routes.deps import rate_limited, services_of
from gateway.services import Services
from gateway.system import health_system, metrics_system
from gateway.triton_client import UNAVAILABLE_RETRY_AFTER_S
from gateway.weights import describe_model

router = APIRouter(tags=["system"])


class ModelHealth(BaseModel):
    installed: bool
    weights: str
    synthetic: bool
    licence: str | None = None
    ready: bool | None = None
    warning: str | None = None


class TritonReadiness(BaseModel):
    server_live: bool
    server_ready: bool
    models: dict[str, bool]
    checked_at: float | None = None
    error: str | None = None
    # One entry per FACET_TRITON_GRPC_URLS endpoint, in that order; addresses are left out.
    endpoints: list[dict[str, Any]] = []


class StatePart(BaseModel):
    backend: str
    connected: bool


class SharedState(BaseModel):
    """Where this gateway keeps what several gateways must share, as connected now."""

    jobs: StatePart
    queue: StatePart
    rate_limits: StatePart
    # uploads and results: `shared` (FACET_SHARED_DIR) or `local`; connected = writable now
    files: StatePart
    vectors: str
    # this gateway's name in the job leases, without its host and process id
    instance: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: float
    version: str
    redis: str
    state: SharedState
    system: dict[str, Any]
    triton: TritonReadiness
    models: dict[str, ModelHealth]
    # The FaceFusion API's field: the processors whose models are ready now (see /processors).
    processors_available: list[str]
    warning: str | None = None


class SystemMetrics(BaseModel):
    cpu_usage_percent: float
    memory_usage_percent: float
    memory_available_gb: float
    disk_usage_percent: float
    disk_free_gb: float


class QueueInfo(BaseModel):
    backend: Literal["redis", "sqlite"]


class JobMetrics(BaseModel):
    total_processed: int
    current_queue_length: int
    average_processing_time: float | None = None
    by_status: dict[str, int]


class MetricsResponse(BaseModel):
    timestamp: float
    system: SystemMetrics
    queue: QueueInfo
    jobs: JobMetrics


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/docs")


# Not rate-limited: load balancers and pollers probe it often, and a probe must never spend a
# client's budget for real work or be refused while the instance is healthy.
@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        503: {
            "model": HealthResponse,
            "description": "the upscaler cannot serve (Triton or its model is not ready)",
            "headers": RETRY_AFTER,
        }
    },
)
async def health(request: Request) -> JSONResponse:
    """The seed's health document plus what Facet adds: Triton and the model's weight source.
    503 (with Retry-After) when the upscaler cannot serve, so load balancers take it out."""
    services = services_of(request)
    ensemble = services.upscaler.ensemble
    ready = await services.triton.is_model_ready(ensemble)
    upscale = describe_model(services.triton.catalog, ensemble)
    models = {services.settings.upscale_model: {**upscale, "ready": ready}}
    models.update(services.faces.models())
    models.update(services.swap.models())
    models.update(services.recognition.models())
    state = await asyncio.to_thread(shared_state, services)
    fields: dict[str, Any] = {
        "status": "healthy" if ready else "unhealthy",
        "timestamp": time.time(),
        "version": __version__,
        "redis": redis_word(state),
        "state": state,
        "system": await asyncio.to_thread(health_system, services.settings.data_dir),
        "triton": public_readiness(services.triton.readiness()),
        "models": models,
        "processors_available": services.swap.available(),
    }
    synthetic = sorted(name for name, info in models.items() if info.get("synthetic"))
    if synthetic:
        fields["warning"] = (
            f"{', '.join(synthetic)} run on synthetic weights: outputs are not meaningful"
        )
    body = HealthResponse(**fields).model_dump(mode="json", exclude_none=True)
    if ready:
        return JSONResponse(body)
    return JSONResponse(
        body, status_code=503, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    )


def shared_state(services: Services) -> SharedState:
    """Each store asked, not the settings read: a configured Redis that is down says so."""
    settings = services.settings
    return SharedState(
        jobs=StatePart(backend=services.store.backend, connected=services.store.ping()),
        queue=StatePart(
            backend=services.queue.backend,
            connected=services.queue.ping(),
        ),
        rate_limits=StatePart(
            backend=services.limiter.backend, connected=services.limiter.check_storage()
        ),
        files=StatePart(
            backend="shared" if settings.shared_dir else "local",
            connected=os.access(settings.files_dir, os.W_OK),
        ),
        vectors=settings.vector_store,
        instance=services.store.owner.rsplit(":", 1)[-1],
    )


def redis_word(state: SharedState) -> str:
    """The seed's `redis` field: connected or disconnected, when there is a Redis at all."""
    if state.queue.backend != "redis":
        return "not used (embedded SQLite queue)"
    return "connected" if state.queue.connected and state.rate_limits.connected else "disconnected"


def public_readiness(readiness: dict[str, Any]) -> dict[str, Any]:
    """Triton's readiness without its raw error words, which name internal addresses (the
    gateway's log keeps them for operators)."""
    public = dict(readiness)
    if public.get("error"):
        public["error"] = "inference server unavailable"
    return public


@router.get(
    "/metrics",
    response_model=MetricsResponse,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(429),
)
async def metrics(request: Request) -> dict[str, Any]:
    services = services_of(request)
    totals = await asyncio.to_thread(services.store.totals)
    queued = totals.by_status["queued"]
    return {
        "timestamp": time.time(),
        "system": await asyncio.to_thread(metrics_system, services.settings.data_dir),
        "queue": {"backend": services.queue.backend},
        "jobs": {
            "total_processed": totals.total_processed,
            "current_queue_length": queued,
            "average_processing_time": _rounded(totals.average_processing_time),
            "by_status": totals.by_status,
        },
    }


def _rounded(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


@router.get(
    "/metrics/prometheus",
    response_class=PlainTextResponse,
    dependencies=[Depends(rate_limited("other"))],
    responses={
        200: {
            "description": "the gateway's metrics in Prometheus' text format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **errors(429),
    },
)
async def prometheus(request: Request) -> Response:
    registry = services_of(request).metrics.registry
    payload = await asyncio.to_thread(generate_latest, registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
