"""Bounded hand-offs between a worker thread and the event loop, both ways.

The loop never blocks on a thread, and a thread never waits on the loop without watching the
pipeline's stop event, so any stage failing or being cancelled ends the others within one poll.
Capacity counts items in flight, which bounds memory: frames are the items.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

T = TypeVar("T")

POLL_S: Final = 0.05  # how soon a blocked thread notices the stop event


class Stopped(Exception):
    """The pipeline is stopping; a worker leaves without reporting anything."""


@dataclass(frozen=True)
class _Item(Generic[T]):
    value: T


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _End:
    pass


_END: Final = _End()


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """call_soon_threadsafe, but quiet once the loop has closed: nobody is listening then."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


class ToLoop(Generic[T]):
    """A worker thread puts, the event loop gets."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, stop: threading.Event):
        self._loop = loop
        self._stop = stop
        self._slots = threading.Semaphore(capacity)
        self._queue: asyncio.Queue[_Item[T] | _Failure | _End] = asyncio.Queue()

    def put(self, value: T) -> float:
        """Block until there is room (raising Stopped if the pipeline stops first); returns
        the seconds spent waiting, which are not the worker's own work."""
        started = time.perf_counter()
        while not self._slots.acquire(timeout=POLL_S):
            if self._stop.is_set():
                raise Stopped
        if self._stop.is_set():
            raise Stopped
        _post(self._loop, self._queue.put_nowait, _Item(value))
        return time.perf_counter() - started

    def close(self) -> None:
        _post(self._loop, self._queue.put_nowait, _END)

    def fail(self, error: BaseException) -> None:
        _post(self._loop, self._queue.put_nowait, _Failure(error))

    async def get(self, timeout_s: float) -> T | None:
        """The next value; None once the worker has closed. The worker's error is raised here;
        TimeoutError when nothing came for `timeout_s`."""
        message = await asyncio.wait_for(self._queue.get(), timeout_s)
        if isinstance(message, _Failure):
            raise message.error
        if isinstance(message, _End):
            return None
        self._slots.release()
        return message.value


class FromLoop(Generic[T]):
    """The event loop puts, a worker thread gets; the worker reports how it ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, stop: threading.Event):
        self._loop = loop
        self._stop = stop
        self._slots = asyncio.Semaphore(capacity)
        self._queue: queue.SimpleQueue[_Item[T] | _End] = queue.SimpleQueue()
        self._ended: asyncio.Future[None] = loop.create_future()
        self._error: BaseException | None = None

    async def put(self, value: T) -> None:
        """Wait for room; raises the worker's error if it has failed."""
        if self._error is None:
            await self._slots.acquire()
        if self._error is not None:
            raise self._error
        self._queue.put(_Item(value))

    def close(self) -> None:
        self._queue.put(_END)

    async def ended(self) -> None:
        """Wait until the worker has finished everything put; raises its error if it failed."""
        await self._ended

    def get(self) -> tuple[T | None, float]:
        """(the next value or None after close, the seconds waited); raises Stopped."""
        started = time.perf_counter()
        while True:
            try:
                message = self._queue.get(timeout=POLL_S)
                break
            except queue.Empty:
                if self._stop.is_set():
                    raise Stopped from None
        if isinstance(message, _End):
            return None, time.perf_counter() - started
        _post(self._loop, self._slots.release)
        return message.value, time.perf_counter() - started

    def finish(self) -> None:
        _post(self._loop, self._settle, None)

    def forget(self) -> None:
        """Mark the worker's error as seen when another stage's error is the one raised, so
        asyncio does not log it as never retrieved."""
        if self._ended.done() and not self._ended.cancelled():
            self._ended.exception()

    def fail(self, error: BaseException) -> None:
        self._error = error
        _post(self._loop, self._settle, error)

    def _settle(self, error: BaseException | None) -> None:
        if error is not None:
            self._slots.release()  # wakes a put waiting for room, which then raises
        if self._ended.done():
            return
        if error is None:
            self._ended.set_result(None)
        else:
            self._ended.set_exception(error)
