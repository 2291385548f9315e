"""Start-up recovery: no job stays `processing` forever and none is lost after a crash.

A `kill -9` leaves rows that say `processing` with no worker behind them, and may lose a queue
message written just before the crash. Both are repaired from the job store, the source of truth.
This assumes one gateway owns the SQLite store; with several gateways sharing Redis, a restart
would also requeue jobs that another gateway is still running (they would then run twice)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.jobs.queue import JobQueue
from gateway.jobs.store import JobStore
from gateway.storage import FileStore


@dataclass(frozen=True)
class RecoveryReport:
    requeued: list[str]
    failed: list[str]
    re_enqueued: list[str]


def recover_jobs(
    store: JobStore, queue: JobQueue, files: FileStore, max_attempts: int
) -> RecoveryReport:
    """Requeue interrupted jobs with attempts left, fail the others (removing their uploads at
    once: nothing will read them again), and re-enqueue queued jobs whose message was lost."""
    requeued, failed, re_enqueued = [], [], []
    for job_id in store.ids_with_status("processing"):
        job = store.get(job_id)
        if job is None:
            continue
        if job.attempts >= max_attempts:
            reason = f"interrupted by a gateway restart after {job.attempts} attempt(s)"
            if store.fail(job_id, reason):
                files.remove(job.input_path)
                failed.append(job_id)
        elif store.requeue(job_id, "interrupted by a gateway restart; running it again"):
            queue.enqueue(job_id)
            requeued.append(job_id)
    pending = queue.pending_ids()
    for job_id in store.ids_with_status("queued"):
        if job_id not in pending and job_id not in requeued:
            queue.enqueue(job_id)
            re_enqueued.append(job_id)
    return RecoveryReport(requeued, failed, re_enqueued)
