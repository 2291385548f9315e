"""What the gateway's PostgreSQL stores (vectors, jobs) share about reporting the driver."""

from __future__ import annotations


def driver_reason(exc: BaseException) -> str:
    """The first line of the driver's message: never the URL, which may carry a password."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
