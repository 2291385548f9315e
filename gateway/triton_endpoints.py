"""Several Tritons serving one repository: which to call next, and which to leave alone.

Pure bookkeeping (no I/O), so that the choice is tested on its own: endpoints take calls in
turn; one that failed is left out until its backoff has passed (then it is on trial again, and
each failure in a row doubles the wait) or a readiness poll finds it ready; when all are backing
off, the soonest back is tried anyway, since a call refused outright is worse than one that may
fail."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0

Client = TypeVar("Client")


@dataclass
class Endpoint(Generic[Client]):
    index: int
    url: str
    client: Client
    ready: bool = True  # optimistic until the first poll: a fresh gateway sends at once
    failures: int = 0
    retry_at: float = 0.0


class EndpointPool(Generic[Client]):
    def __init__(
        self,
        endpoints: Sequence[tuple[str, Client]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one Triton endpoint is needed")
        self.endpoints = [Endpoint(i, url, client) for i, (url, client) in enumerate(endpoints)]
        self._clock = clock
        self._turn = itertools.count()

    def candidates(self) -> list[Endpoint[Client]]:
        """Every endpoint once, in the order to try them for one call: those not backing off
        (healthy, or failed longer ago than their backoff: on trial again), starting at the
        next in turn; then the ones backing off, soonest back first."""
        now = self._clock()
        serving = [e for e in self.endpoints if e.retry_at <= now]
        if serving:
            start = next(self._turn) % len(serving)
            serving = serving[start:] + serving[:start]
        waiting = sorted((e for e in self.endpoints if e.retry_at > now), key=lambda e: e.retry_at)
        return serving + waiting

    def mark_failed(self, endpoint: Endpoint[Client]) -> None:
        """Take it out of the rotation, for longer after each failure in a row."""
        endpoint.ready = False
        endpoint.failures += 1
        backoff = min(FIRST_BACKOFF_S * 2 ** (endpoint.failures - 1), MAX_BACKOFF_S)
        endpoint.retry_at = self._clock() + backoff

    def mark_ready(self, endpoint: Endpoint[Client]) -> None:
        endpoint.ready = True
        endpoint.failures = 0
        endpoint.retry_at = 0.0

    def describe(self) -> list[dict[str, object]]:
        """Per endpoint, in configuration order: ready, failures in a row (no addresses)."""
        return [
            {"index": e.index, "ready": e.ready, "failures": e.failures} for e in self.endpoints
        ]
