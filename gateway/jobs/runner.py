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
# Backoff while Triton is unreachable: quick first retries (a restart takes seconds), then no
# more often than every 10 s.
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 10.0

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
        *,
        unavailable_window_s: float = 90.0,
    ) -> None:
        self._store = store
        self._unavailable_window_s = unavailable_window_s
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
        requeued = False
        try:
            handler = self._handlers.get(job.kind)
            if handler is None:
                raise FacetError(f"no handler for jobs of kind '{job.kind}'")
            await self._run_patiently(handler, job)
        except JobCancelled:
            log.info("job %s cancelled while running", job_id)
        except Unavailable as exc:
            reason = f"inference service unavailable: {exc.detail}"
            requeued = await self._retry_or_fail(job, reason, exc)
        except FacetError as exc:
            await asyncio.to_thread(self._store.fail, job_id, exc.detail)
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            await asyncio.to_thread(
                self._store.fail, job_id, f"internal error ({type(exc).__name__})"
            )
        finally:
            # Released before the message goes out again: a worker of this process may take
            # the requeued job at once, and its claim waits for this run to have ended.
            self._store.release(job_id)
            if requeued:
                self._requeue(job_id)
            await self._cleanup_input(job_id)

    async def _run_patiently(self, handler: JobHandler, job: Job) -> None:
        """Run the handler; while Triton is unavailable (restarting, its queue full), run it
        again with backoff until the window closes, without spending one of the job's attempts.
        A job cancelled meanwhile stops waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._unavailable_window_s
        pause = FIRST_PAUSE_S
        while True:
            try:
                await handler(job)
                return
            except Unavailable as exc:
                if loop.time() + pause > deadline:
                    raise
                log.warning("job %s: %s; retrying in %.0f s", job.id, exc.detail, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
            if not await asyncio.to_thread(self._store.holds, job.id):
                raise JobCancelled("cancelled (or taken over) while waiting for Triton")

    async def _retry_or_fail(self, job: Job, reason: str, exc: Unavailable) -> bool:
        """Requeue the job while it has attempts left (True: its message is to be re-sent),
        else fail it."""
        if job.attempts < self._max_attempts:
            await asyncio.sleep(min(float(exc.retry_after or 1), RETRY_PAUSE_CAP_S))
            if await asyncio.to_thread(self._store.requeue, job.id, reason):
                return True
        await asyncio.to_thread(self._store.fail, job.id, reason)
        return False

    async def _cleanup_input(self, job_id: str) -> None:
        job = await asyncio.to_thread(self._store.get, job_id)
        if job is not None and job.status not in ("queued", "processing"):
            self._files.remove(job.input_path)
