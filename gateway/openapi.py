"""What the OpenAPI document says about errors, so that it tells the truth: every error answer
has the one body `app.py` writes, validation failures are 400 (the seeds document 400, and
`app.py` answers 400, not FastAPI's 422), and 429/503 say that they carry Retry-After."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="why, in words meant for the caller")
    error: str = Field(description="the gateway's error class, e.g. BadRequest, Overloaded")


class ContextErrorBody(BaseModel):
    """The body of every error answer under /api/v1, as the Image Context Extractor API
    documents it."""

    success: bool = Field(description="always false")
    error: str = Field(description="the gateway's error class, e.g. NotFound, Forbidden")
    message: str = Field(description="why, in words meant for the caller")
    details: dict[str, Any] = Field(description="`status_code`: the HTTP status")
    timestamp: str = Field(description="ISO 8601, the server's local time")


# Paths whose errors use ContextErrorBody.
CONTEXT_PREFIX = "/api/v1"

RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
DESCRIPTIONS = {
    400: "invalid parameters or an unreadable image (the reason says which)",
    401: "a protected route without `Authorization: Bearer <FACET_API_TOKEN>` (or a wrong one)",
    403: "a server-side path outside the media roots (FACET_MEDIA_ROOTS)",
    404: "no such job, result, batch, image or path (or it expired)",
    409: "the file exists already (upload with overwrite=true to replace it)",
    413: "upload larger than the limit (counted on the wire, also for chunked bodies)",
    415: "not a JPEG, PNG or WebP image",
    429: "rate limit exceeded for this client",
    502: "the inference server answered with an error",
    503: "the inference server or a model is unavailable, or the queue is full",
    504: "the inference server did not answer within the deadline",
}
VALIDATION_CODES = ("422",)


ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
CONTEXT_ERROR_CONTENT = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ContextErrorBody"}}
}


def errors(*codes: int, context: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries for these error codes, each with the real body's schema (always
    JSON, whatever the route's own media type); `context`: the /api/v1 body."""
    content = CONTEXT_ERROR_CONTENT if context else ERROR_CONTENT
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        answer: dict[str, Any] = {"description": DESCRIPTIONS[code], "content": content}
        if code in (429, 503):
            answer["headers"] = RETRY_AFTER
        answers[code] = answer
    return answers


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with FastAPI's 422 entries folded into our 400."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            fold_validation_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def fold_validation_errors(schema: dict[str, Any]) -> None:
    """Replace each operation's 422 (never sent) by a 400 with the error body, and drop the
    validation schemas nothing refers to any more."""
    for path, operations in schema.get("paths", {}).items():
        content = CONTEXT_ERROR_CONTENT if path.startswith(CONTEXT_PREFIX) else ERROR_CONTENT
        for operation in operations.values():
            responses = operation.get("responses", {})
            if not any(code in responses for code in VALIDATION_CODES):
                continue
            for code in VALIDATION_CODES:
                responses.pop(code, None)
            responses.setdefault("400", {"description": DESCRIPTIONS[400], "content": content})
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.setdefault("ErrorBody", ErrorBody.model_json_schema())
    components.setdefault("ContextErrorBody", ContextErrorBody.model_json_schema())
