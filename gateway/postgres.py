"""What the gateway's PostgreSQL stores (vectors, jobs) share: connection options and how the
driver's errors are reported."""

from __future__ import annotations

from typing import Any

# A server or peer that vanished is noticed within about a minute, not after TCP's two hours.
KEEPALIVES: dict[str, Any] = {  # libpq parameters, passed to psycopg.connect
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20000,
}
NOT_A_URL = "FACET_POSTGRES_URL is not a PostgreSQL connection URL"


def driver_reason(exc: BaseException) -> str:
    """The first line of the driver's message: never the URL, which may carry a password."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
