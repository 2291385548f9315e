"""The WebSocket layer's limits, one frozen object (the settings will fill it in)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class WsLimits:
    """Every bound of the WebSocket endpoints. A `None` time switches that timer off."""

    # One client message (text or binary), in bytes; over it the connection closes with 1009.
    max_message_bytes: int = 64 * 1024
    # Open connections over all endpoints; one more is accepted and closed at once with 1013.
    max_connections: int = 1000
    # Messages waiting to go out to one client; past it progress events are dropped (see Outbox).
    max_queue: int = 256
    # Invalid messages in a row answered with errors before the connection closes with 1008.
    max_bad_messages: int = 20
    # A heartbeat event after this long with nothing sent, so idle proxies keep the connection.
    heartbeat_s: float | None = 30.0
    # Close (1000) a client that sent nothing for this long; off by default, since a client
    # that only listens (the seed's processing subscriber) is legitimate.
    idle_timeout_s: float | None = None
    # How long a requested close may wait for the writer before the connection is dropped.
    close_timeout_s: float = 5.0
    # Live search: results when the message names no limit, and the most it may ask for.
    search_default_limit: int = 10
    search_max_limit: int = 100

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"WsLimits.{field.name} must be a positive number, got {value!r}")
        if self.search_default_limit > self.search_max_limit:
            raise ValueError("WsLimits.search_default_limit must not exceed search_max_limit")
