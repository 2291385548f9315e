"""FastAPI app factory. Errors are mapped to HTTP here and only here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from gateway import __version__
from gateway.errors import FacetError, PayloadTooLarge
from gateway.observability import GatewayMetrics
from gateway.routes import restore, system, upscale
from gateway.services import start_services
from gateway.settings import Settings

# Multipart framing around the file: boundaries, headers and the small form fields.
MULTIPART_OVERHEAD = 64 * 1024
DESCRIPTION = """\
Facet's REST gateway: image upscaling with Real-ESRGAN served by Triton Inference Server.
Compatible with the Real-ESRGAN upscaler API (submit → poll status → download result).
Prometheus metrics of the gateway are at `/metrics/prometheus`; Triton's own on its metrics port.
"""


def error_response(exc: FacetError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    body = {"detail": exc.detail, "error": type(exc).__name__}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """The seed documents 400 for invalid parameters; say which field and why."""
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        reasons.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(reasons), "error": "BadRequest"}, status_code=400)


def install_error_handlers(app: FastAPI) -> None:
    async def on_facet_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FacetError)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc)

    app.add_exception_handler(FacetError, on_facet_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def upload_guard(settings: Settings) -> Callable[..., Awaitable[Response]]:
    """Refuse an oversized upload from its Content-Length, before the body is read at all."""
    limit = settings.max_upload_bytes + MULTIPART_OVERHEAD

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > limit:
            return error_response(PayloadTooLarge(_too_large(settings.max_upload_bytes)))
        return await call_next(request)

    return guard


def _too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit // (1024 * 1024)} MB"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await start_services(settings, metrics)
        app.state.services = services
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Facet gateway", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.middleware("http")(upload_guard(settings))
    app.middleware("http")(metrics.middleware)
    # Public API without credentials, like the one it replaces: browsers may call it directly.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.include_router(system.router)
    app.include_router(upscale.router)
    app.include_router(restore.router)
    return app
