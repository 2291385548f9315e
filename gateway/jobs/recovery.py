"""No job stays `processing` forever and none is lost: after a crash, and while gateways die.

A `kill -9` leaves rows that say `processing` with no worker behind them, and may lose a queue
message (written just before the crash, or taken off the queue by a gateway that died before
claiming it). Both are repaired from the job store, the source of truth: at start-up, and then
every few seconds by each gateway (`LeaseKeeper`), which also renews its own leases. On a
shared store only expired leases are taken over, and the guarded UPDATE lets one gateway win;
a duplicate queue message is harmless, since a job is claimed only while `queued`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.jobs.queue import JobQueue
from gateway.jobs.store import JobStore
from gateway.storage import FileStore

log = logging.getLogger(__name__)
RESTART_REASON = "interrupted by a gateway restart"
LOST_REASON = "its gateway stopped answering"


@dataclass(frozen=True)
class RecoveryReport:
    requeued: list[str]
    failed: list[str]
    re_enqueued: list[str]

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.re_enqueued)


def recover_jobs(
    store: JobStore,
    queue: JobQueue,
    files: FileStore,
    max_attempts: int,
    *,
    at_start: bool = True,
) -> RecoveryReport:
    """Requeue interrupted jobs with attempts left, fail the others (removing their uploads at
    once: nothing will read them again), and re-enqueue queued jobs whose message was lost.

    At start-up an embedded store's running jobs are all a dead predecessor's; a shared one's
    only once their lease expired. Queued jobs count as lost only when they have waited a lease
    period without a message (a younger one may be between its insert and its enqueue)."""
    everything = at_start and not store.shared
    reason = RESTART_REASON if everything else LOST_REASON
    taken = store.take_over_expired(max_attempts, reason=reason, everything=everything)
    for job_id in taken.requeued:
        queue.enqueue(job_id)
    for job_id in taken.failed:
        job = store.get(job_id)
        if job is not None:
            files.remove(job.input_path)
    pending = queue.pending_ids()
    grace = 0.0 if everything else store.lease_s
    lost = [
        job_id
        for job_id in store.stale_queued(time.time() - grace)
        if job_id not in pending and job_id not in taken.requeued
    ]
    for job_id in lost:
        queue.enqueue(job_id)
    return RecoveryReport(taken.requeued, taken.failed, lost)


class LeaseKeeper:
    """Each gateway's heartbeat: renew its leases, take over the dead's, re-send lost messages.

    Two threads of their own, not the event loop: a loop kept busy by a long request must not
    look like a dead gateway to the others, and a slow take-over (a Redis that hangs) must not
    hold up this gateway's own renewals. After a renewal fails (the store was unreachable,
    so every gateway's renewals failed too), nothing is taken over for one lease period: the
    others need that long to renew theirs."""

    def __init__(
        self, store: JobStore, queue: JobQueue, files: FileStore, max_attempts: int
    ) -> None:
        self._store, self._queue, self._files = store, queue, files
        self._max_attempts = max_attempts
        self.interval_s = store.lease_s / 3
        self._failed_at = float("-inf")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        for name, beat in (("renew", self.renew), ("take-over", self.take_over)):
            thread = threading.Thread(
                target=self._every_interval, args=(beat,), name=f"facet-leases-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def _every_interval(self, beat: Callable[[], None]) -> None:
        while not self._stop.wait(self.interval_s):
            beat()

    def renew(self) -> None:
        try:
            self._store.renew_leases()
        except Exception:  # the next beat tries again; a storage outage must not end them
            self._failed_at = time.monotonic()
            log.exception("renewing this gateway's job leases failed")

    def take_over(self) -> None:
        if time.monotonic() - self._failed_at < self._store.lease_s:
            return
        try:
            report = recover_jobs(
                self._store, self._queue, self._files, self._max_attempts, at_start=False
            )
        except Exception:  # retried at the next beat
            log.exception("taking over expired jobs failed")
            return
        if report:
            log.warning("took over jobs: %s", report)
