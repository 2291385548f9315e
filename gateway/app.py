"""FastAPI app factory. Errors are mapped to HTTP here and only here."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from gateway import __version__
from gateway.body_limit import BodyLimit
from gateway.errors import FacetError, PayloadTooLarge, UnsupportedMediaType
from gateway.observability import GatewayMetrics
from gateway.openapi import CONTEXT_PREFIX, install_openapi
from gateway.routes import (
    camera,
    context_directories,
    context_duplicates,
    context_images,
    context_system,
    downloads,
    process,
    recognition_faces,
    recognition_images,
    restore,
    system,
    ui,
    upscale,
)
from gateway.services import Services, start_services
from gateway.settings import Settings
from gateway.ws.hub import Hub
from gateway.ws.limits import WsLimits
from gateway.ws.routes import ws_router

# Multipart framing around the file: boundaries, headers and the small form fields.
MULTIPART_OVERHEAD = 64 * 1024
# Swagger UI and ReDoc files, served by the gateway itself (see install_offline_docs).
STATIC_URL = "/static"
DOCS_ASSETS = ("fastapi_offline", "static")
DESCRIPTION = """\
Facet's REST gateway in front of Triton Inference Server, compatible with the APIs its users
already call: the Real-ESRGAN upscaler (submit → poll status → download result), the GFPGAN
restoration API (`/restore`, `/batch`), the FaceFusion API (`/process/image`, `/process/video`)
and the Image Context Extractor (`/api/v1/…`: captions, objects, search, duplicates, directory
tasks; WebSockets at `/ws`, `/ws/processing`, `/ws/search`, statistics at `/ws/stats`) and
the AI Multimedia Platform's recognition APIs (`/api/face-recognition/…` with a consent-first
face gallery, `/api/image-recognition/…`, the live camera at `/ws/camera`).
Prometheus metrics of the gateway are at `/metrics/prometheus`; Triton's own on its metrics port.

**[Open the web page](/ui/)** to upscale, restore and swap faces in images and videos, and to
caption and search images, in the browser.
"""


def error_response(exc: FacetError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    body = {"detail": exc.detail, "error": type(exc).__name__}
    return JSONResponse(body, status_code=exc.status, headers=headers)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """The seed documents 400 for invalid parameters; say which field and why."""
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        reasons.append(f"{where}: {_plain_message(str(error.get('msg', 'invalid')))}")
    return JSONResponse({"detail": "; ".join(reasons), "error": "BadRequest"}, status_code=400)


def _plain_message(message: str) -> str:
    """FastAPI's reason without Python reprs: a text field where a file belongs is reported
    as "Expected UploadFile, received: <class 'str'>"."""
    if "Expected UploadFile" in message:
        return "must be a file (a multipart part with a filename), not a text field"
    return re.sub(r"<class '([\w.]+)'>", r"\1", message)


# Starlette's own refusals (form parsing, unknown paths, wrong methods) in the same body shape.
HTTP_ERROR_NAMES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}
HEADER_TOO_LONG = "Maximum header size exceeded"


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's and FastAPI's HTTP errors with the gateway's error body, and a reason that
    says what was wrong where python-multipart only said "Invalid multipart data"."""
    detail = str(exc.detail)
    if _caused_by(exc, HEADER_TOO_LONG):
        detail = (
            "a multipart part's header line is too long (over 4,224 bytes; e.g. a filename of "
            "thousands of characters): shorten the filename"
        )
    name = HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    return JSONResponse(
        {"detail": detail, "error": name}, status_code=exc.status_code, headers=exc.headers
    )


def _caused_by(exc: BaseException, text: str) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # the chain is short; bounded against cycles
        if seen is None:
            return False
        if text in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def context_error_response(response: JSONResponse) -> JSONResponse:
    """An error answer in the Image Context Extractor's body (every /api/v1 route): the same
    status, headers and reason, its fields renamed as that API documents them."""
    body = json.loads(bytes(response.body))
    shaped = {
        "success": False,
        "error": body.get("error", "HTTPError"),
        "message": body.get("detail", ""),
        "details": {"status_code": response.status_code},
        "timestamp": datetime.now().isoformat(),
    }
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(shaped, status_code=response.status_code, headers=headers)


def shaped_for(request: Request, response: JSONResponse) -> JSONResponse:
    if request.url.path.startswith(CONTEXT_PREFIX):
        return context_error_response(response)
    return response


def install_error_handlers(app: FastAPI) -> None:
    async def on_facet_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FacetError)
        return shaped_for(request, error_response(exc))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return shaped_for(request, validation_response(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return shaped_for(request, http_error_response(exc))

    async def on_crash(request: Request, exc: Exception) -> Response:
        # Only reached by a bug: logged by Starlette's ServerErrorMiddleware; the answer keeps
        # the body of the API the path belongs to and says nothing of the internals.
        plain = JSONResponse({"detail": "internal error", "error": "InternalError"}, 500)
        return shaped_for(request, plain)

    app.add_exception_handler(Exception, on_crash)
    app.add_exception_handler(FacetError, on_facet_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def upload_guard(settings: Settings) -> Callable[..., Awaitable[Response]]:
    """Refuse an oversized upload from its Content-Length, before the body is read at all."""

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        limit = upload_limit(settings, request.url.path)
        if request.method == "POST" and length and length.isdigit() and int(length) > limit:
            return shaped_for(request, too_large_response(limit))
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if request.method == "POST" and encoding not in ("", "identity"):
            return shaped_for(request, compressed_body_response())
        return await call_next(request)

    return guard


def compressed_body_response() -> JSONResponse:
    """No body is inflated (a gzip bomb costs nothing): a compressed one is refused as such,
    with RFC 7694's Accept-Encoding saying what is accepted. Limits count the bytes sent."""
    error = UnsupportedMediaType(
        "compressed request bodies (Content-Encoding) are not accepted; send the upload "
        "uncompressed (images and videos are compressed already)"
    )
    response = error_response(error)
    response.headers["accept-encoding"] = "identity"
    return response


def file_limit(settings: Settings, path: str) -> int:
    """The file bytes one upload to `path` may carry: a video, two photos (a face swap's
    target and source), or one photo."""
    if path == "/process/video":
        return settings.video_max_bytes + settings.max_upload_bytes
    if path == "/process/image":
        return 2 * settings.max_upload_bytes
    return settings.max_upload_bytes


def upload_limit(settings: Settings, path: str = "") -> int:
    """Body bytes a request to `path` may carry: its file limit plus the multipart framing."""
    return file_limit(settings, path) + MULTIPART_OVERHEAD


def too_large_response(limit: int) -> JSONResponse:
    """The one 413 answer, whether the length was declared or counted (gateway.body_limit)."""
    return error_response(PayloadTooLarge(_too_large(limit - MULTIPART_OVERHEAD)))


def _too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit // (1024 * 1024)} MB"


class CountedTooLarge(JSONResponse):
    """BodyLimit's 413, which it sends without a Request: shaped as `shaped_for` does when it
    is sent, from the request's path (the seed's error body under /api/v1)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope.get("path", "")).startswith(CONTEXT_PREFIX):
            await context_error_response(self)(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def counted_too_large_response(limit: int) -> JSONResponse:
    plain = too_large_response(limit)
    return CountedTooLarge(json.loads(bytes(plain.body)), status_code=plain.status_code)


def install_offline_docs(app: FastAPI) -> None:
    """/docs and /redoc from asset files installed with the gateway (the fastapi-offline wheel)
    instead of FastAPI's CDN links, so the pages work on a machine without internet access.
    No Google fonts, no online validator badge: nothing on these pages leaves the gateway."""
    app.mount(STATIC_URL, StaticFiles(packages=[DOCS_ASSETS]), name="static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )


def _root_path(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return root.rstrip("/") if isinstance(root, str) else ""


def ws_limits(settings: Settings) -> WsLimits:
    return WsLimits(
        max_message_bytes=settings.ws_max_message_bytes,
        max_connections=settings.ws_max_connections,
        max_queue=settings.ws_queue_length,
    )


def live_search(app: FastAPI) -> Callable[..., Awaitable[list[dict[str, object]]]]:
    """/ws/search's search: the same one as GET /api/v1/images/?query=…"""

    async def search(
        query: str, limit: int, objects: list[str] | None, min_score: float | None
    ) -> list[dict[str, object]]:
        services: Services = app.state.services
        library = services.library
        names = [name.strip().lower() for name in objects or [] if name.strip()] or None
        hits = await library.search(query, limit=limit, min_score=min_score, objects=names)
        return [
            context_images.image_info(library, record)
            | {"score": round(score, 6), "distance": round(distance, 6)}
            for record, score, distance in hits
        ]

    return search


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = GatewayMetrics()
    hub = Hub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await start_services(settings, metrics, hub)
        app.state.services = services
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Facet gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Innermost, so the metrics and CORS middleware see (and count) its 413 like any answer.
    app.add_middleware(
        BodyLimit,
        limit=lambda path: upload_limit(settings, path),
        refusal=counted_too_large_response,
    )
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
    app.include_router(downloads.router)
    app.include_router(process.router)
    app.include_router(context_system.router)
    app.include_router(context_images.router)
    app.include_router(context_directories.router)
    app.include_router(context_duplicates.router)
    app.include_router(recognition_faces.router)
    app.include_router(recognition_images.router)
    app.include_router(camera.router)
    app.include_router(ui.router)
    app.include_router(ws_router(hub, live_search(app), ws_limits(settings)))
    install_offline_docs(app)
    install_openapi(app)
    return app
