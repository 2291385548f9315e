"""One client's bounded outgoing queue and its drop rules.

While there is room every message is queued in order. When the queue is full:

- a progress event replaces the progress events of its task still waiting (the newest
  progress per task is kept); where its task has none waiting, a stale progress event
  (one with a newer event of its own task behind it) makes room; else it is dropped;
- any other message (final events, replies, the rest) is never dropped: a final event first
  replaces the waiting progress of its own task, else a stale progress event makes room, else
  the oldest progress event; where no progress waits at all the client cannot keep up and
  `put` answers OVERFLOW (the hub then closes it).

Each progress event removed or refused counts as one drop. Not thread-safe: the event loop's
thread only.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass

import anyio


class Kind(enum.Enum):
    PROGRESS = "progress"  # intermediate: may be dropped when the client lags
    FINAL = "final"  # a task's last word: never dropped
    OTHER = "other"  # replies and the other events: never dropped


@dataclass(frozen=True, eq=False)
class Outgoing:
    """A message serialised once, however many clients it goes to."""

    text: str
    kind: Kind = Kind.OTHER
    task_id: str | None = None


@dataclass(frozen=True)
class CloseRequest:
    code: int
    reason: str


class PutResult(enum.Enum):
    QUEUED = "queued"
    REPLACED = "replaced"  # queued; the waiting progress of the same task was dropped
    EVICTED = "evicted"  # queued; a stale (else the oldest) waiting progress was dropped
    DROPPED = "dropped"  # this progress event was dropped
    OVERFLOW = "overflow"  # not queued, and it must not be dropped: close the client
    CLOSED = "closed"  # the outbox is closing; nothing is queued any more

    @property
    def queued(self) -> bool:
        return self in (PutResult.QUEUED, PutResult.REPLACED, PutResult.EVICTED)


class Outbox:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an outbox holds at least one message")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Outgoing] = deque()
        self._close: CloseRequest | None = None
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closing(self) -> CloseRequest | None:
        return self._close

    def pending(self) -> tuple[Outgoing, ...]:
        return tuple(self._items)

    def put(self, item: Outgoing) -> PutResult:
        """Queue `item` by the rules above; the result says what happened (and `dropped` counts)."""
        if self._close is not None:
            return PutResult.CLOSED
        if len(self._items) < self.capacity:
            self._append(item)
            return PutResult.QUEUED
        if item.kind is Kind.PROGRESS:
            return self._put_progress_when_full(item)
        return self._put_reliable_when_full(item)

    def close(self, code: int, reason: str) -> None:
        """Discard what waits and have the writer close with `code` (the first request wins)."""
        if self._close is None:
            self._close = CloseRequest(code, reason)
            self._items.clear()
            self._wakeup.set()

    async def get(self, timeout: float | None = None) -> Outgoing | CloseRequest | None:
        """The next message, or the close request once there is one, or None after `timeout`
        seconds with nothing to send."""
        while True:
            if self._close is not None:
                return self._close
            if self._items:
                return self._items.popleft()
            self._wakeup.clear()
            with anyio.move_on_after(timeout) as waited:
                await self._wakeup.wait()
            if waited.cancelled_caught:
                return None

    def _append(self, item: Outgoing) -> None:
        self._items.append(item)
        self._wakeup.set()

    def _put_progress_when_full(self, item: Outgoing) -> PutResult:
        older = self._waiting_progress(item.task_id) if item.task_id is not None else []
        if older:
            self._discard(older)
            self._append(item)
            return PutResult.REPLACED
        stale = self._oldest_stale_progress()
        if stale is None:
            self.dropped += 1
            return PutResult.DROPPED
        self._discard([stale])
        self._append(item)
        return PutResult.EVICTED

    def _put_reliable_when_full(self, item: Outgoing) -> PutResult:
        if item.kind is Kind.FINAL and item.task_id is not None:
            obsolete = self._waiting_progress(item.task_id)
            if obsolete:
                self._discard(obsolete)
                self._append(item)
                return PutResult.REPLACED
        victim = self._oldest_stale_progress() or next(
            (queued for queued in self._items if queued.kind is Kind.PROGRESS), None
        )
        if victim is None:
            return PutResult.OVERFLOW
        self._discard([victim])
        self._append(item)
        return PutResult.EVICTED

    def _oldest_stale_progress(self) -> Outgoing | None:
        """The first progress event with a newer event of its task behind it in the queue."""
        later: set[str] = set()
        stale = None
        for queued in reversed(self._items):
            if queued.task_id is None or queued.kind is Kind.OTHER:
                continue
            if queued.kind is Kind.PROGRESS and queued.task_id in later:
                stale = queued
            later.add(queued.task_id)
        return stale

    def _waiting_progress(self, task_id: str | None) -> list[Outgoing]:
        return [
            queued
            for queued in self._items
            if queued.kind is Kind.PROGRESS and queued.task_id == task_id
        ]

    def _discard(self, items: list[Outgoing]) -> None:
        for item in items:
            self._items.remove(item)  # by identity: Outgoing compares with `is`
        self.dropped += len(items)
