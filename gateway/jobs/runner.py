"""Runs jobs: claim → the handler for the job's kind → completed / failed / cancelled.

Huey's worker threads call `handle`; the work itself runs as a coroutine on the gateway's event
loop so that every job shares the one async Triton client (one channel, reused)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from gateway.errors import FacetError, JobCancelled, Unavailable
from gateway.jobs.store import Job, JobStore
from gateway.storage import FileStore

log = logging.getLogger(__name__)
RETRY_PAUSE_CAP_S = 5.0

# A handler does the work of one claimed job and records its result with the store.
JobHandler = Callable[[Job], Awaitable[None]]


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        files: FileStore,
        handlers: Mapping[str, JobHandler],
        loop: asyncio.AbstractEventLoop,
        max_attempts: int,
    ) -> None:
        self._store = store
        self._files = files
        self._handlers = handlers
        self._loop = loop
        self._max_attempts = max_attempts
        self._requeue: Callable[[str], None] = lambda job_id: None

    def set_requeue(self, requeue: Callable[[str], None]) -> None:
        """The queue is built around this runner's `handle`, so it is wired in afterwards."""
        self._requeue = requeue

    def handle(self, job_id: str) -> None:
        """Entry point for a worker thread: block until the job's coroutine has finished."""
        asyncio.run_coroutine_threadsafe(self.run(job_id), self._loop).result()

    async def run(self, job_id: str) -> None:
        job = await asyncio.to_thread(self._store.claim, job_id)
        if job is None:  # cancelled while queued, or already taken
            return
        try:
            handler = self._handlers.get(job.kind)
            if handler is None:
                raise FacetError(f"no handler for jobs of kind '{job.kind}'")
            await handler(job)
        except JobCancelled:
            log.info("job %s cancelled while running", job_id)
        except Unavailable as exc:
            await self._retry_or_fail(job, f"inference service unavailable: {exc.detail}", exc)
        except FacetError as exc:
            await asyncio.to_thread(self._store.fail, job_id, exc.detail)
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            await asyncio.to_thread(
                self._store.fail, job_id, f"internal error ({type(exc).__name__})"
            )
        finally:
            await self._cleanup_input(job_id)

    async def _retry_or_fail(self, job: Job, reason: str, exc: Unavailable) -> None:
        if job.attempts < self._max_attempts:
            await asyncio.sleep(min(float(exc.retry_after or 1), RETRY_PAUSE_CAP_S))
            if await asyncio.to_thread(self._store.requeue, job.id, reason):
                self._requeue(job.id)
                return
        await asyncio.to_thread(self._store.fail, job.id, reason)

    async def _cleanup_input(self, job_id: str) -> None:
        job = await asyncio.to_thread(self._store.get, job_id)
        if job is not None and job.status not in ("queued", "processing"):
            self._files.remove(job.input_path)
