"""One exception hierarchy for the gateway. Routes and pipelines raise these; `app.py` maps them
to HTTP in one place, so no status code is chosen deep inside the code."""

from __future__ import annotations

from typing import ClassVar


class FacetError(Exception):
    """Base class. `status` is the HTTP answer, `retry_after` (seconds) adds a Retry-After."""

    status: int = 500
    retry_after: int | None = None
    headers: ClassVar[dict[str, str]] = {}  # sent with the answer; never mutated

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if retry_after is not None:
            self.retry_after = retry_after


class BadRequest(FacetError):
    status = 400


class Unauthorized(FacetError):
    """A protected route called without the bearer token FACET_API_TOKEN sets (or a wrong one)."""

    status = 401
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class Forbidden(FacetError):
    """A path outside what the server may read or write (the media roots)."""

    status = 403


class NotFound(FacetError):
    status = 404


class Conflict(FacetError):
    status = 409


class PayloadTooLarge(FacetError):
    status = 413


class UnsupportedMediaType(FacetError):
    status = 415


class RateLimited(FacetError):
    status = 429
    retry_after = 60


class Unavailable(FacetError):
    """Triton (or a model) cannot take the work now; the client should come back later."""

    status = 503
    retry_after = 5


class ModelNotReady(Unavailable):
    def __init__(self, model: str, detail: str | None = None) -> None:
        super().__init__(detail or f"model '{model}' is not loaded or not ready")
        self.model = model


class Overloaded(Unavailable):
    """A bounded queue (Triton's or the gateway's) is full."""


class UpstreamTimeout(FacetError):
    status = 504


class UpstreamError(FacetError):
    """Triton answered with an error that is neither the client's fault nor overload."""

    status = 502


class JobCancelled(FacetError):
    """Raised inside a running job when its cancellation is noticed; never reaches a client."""

    status = 409
