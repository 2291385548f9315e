"""One exception hierarchy for both clients, so callers catch the same classes whether they talk
to Triton over gRPC or to the gateway over HTTP.

`exit_code` is what the `facet` CLI exits with: 2 when the request itself was at fault (bad
input, unknown job or model), 1 when the server failed or could not be reached.
"""

from __future__ import annotations


class FacetClientError(Exception):
    """Base class. `detail` is the server's own words; `status` the HTTP status (REST) and
    `code` the error's name (the gateway's `error` field, or the gRPC status name)."""

    exit_code: int = 1

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.retry_after = retry_after


class BadRequestError(FacetClientError):
    """The server refused the request as invalid (HTTP 4xx, gRPC INVALID_ARGUMENT)."""

    exit_code = 2


class NotFoundError(FacetClientError):
    """The job, result or model asked for does not exist (HTTP 404, gRPC NOT_FOUND)."""

    exit_code = 2


class UnavailableError(FacetClientError):
    """The server cannot take the work now (HTTP 503, gRPC UNAVAILABLE, connection refused, a
    model still loading); `retry_after` is the server's Retry-After, when it sent one (Triton
    never does)."""


class OverloadedError(UnavailableError):
    """A bounded queue is full (gateway 503 Overloaded, Triton's 'Exceeds maximum queue size')."""


class RateLimitedError(OverloadedError):
    """This client sent more requests per minute than the gateway allows (HTTP 429)."""


class DeadlineExceededError(FacetClientError):
    """No answer within the deadline (HTTP 504, gRPC DEADLINE_EXCEEDED, a wait that ran out)."""


class ServerError(FacetClientError):
    """The server failed on a valid request (HTTP 500/502, any other gRPC error)."""


class JobFailedError(FacetClientError):
    """A gateway job ended `failed` or `cancelled` instead of `completed`."""

    def __init__(self, detail: str, *, job_id: str, job_status: str) -> None:
        super().__init__(detail, code=job_status)
        self.job_id = job_id
        self.job_status = job_status
