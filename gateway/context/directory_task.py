"""The seed's background directory processing (`directories/process-async`) as a durable job
on the same machinery as the upscale jobs: a row in the job store (so a task survives a
gateway restart and is requeued by start-up recovery), huey carrying its id, progress written
to the row and published to WebSocket subscribers of the "processing" channel.

The seed's task fields map onto the job row: status (queued, processing, completed, failed;
cancelled is ours), progress as a float percentage and a message ("Processing image 33 of
50") kept in the job's outcome, result = the same body `directories/process` answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from gateway.context.library import DirectoryOutcome, ImageLibrary
from gateway.context.paths import image_files
from gateway.errors import JobCancelled, Unavailable
from gateway.jobs.store import Job, JobStore

KIND: Final = "context_directory"
Publish = Callable[[str, Mapping[str, Any]], object]  # channel, event


def new_task_id() -> str:
    return f"task-{uuid.uuid4()}"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp).isoformat()


def directory_result(outcome: DirectoryOutcome, warning: str | None) -> dict[str, Any]:
    """The body of `directories/process`, also a finished task's `result`."""
    body: dict[str, Any] = {
        "success": not outcome.failed_files or bool(outcome.processed_ids or outcome.skipped_ids),
        "total_files": outcome.total_files,
        "processed": len(outcome.processed_ids),
        "skipped": len(outcome.skipped_ids),
        "failed": len(outcome.failed_files),
        "processed_ids": outcome.processed_ids,
        "failed_files": outcome.failed_files,
        "failures": outcome.failures,
        "processing_time": round(outcome.processing_time, 3),
        "message": f"Directory processed: {len(outcome.processed_ids)} images processed",
    }
    if warning:
        body["warning"] = warning
    return body


def task_view(job: Job) -> dict[str, Any]:
    """A job row as the seed's task object."""
    outcome = job.outcome or {}
    progress = 100.0 if job.status == "completed" else float(outcome.get("progress", 0.0))
    updated = max(
        t
        for t in (job.created_at, job.started_at, job.completed_at, outcome.get("updated_at"))
        if t is not None
    )
    return {
        "task_id": job.id,
        "status": job.status,
        "progress": round(progress, 1),
        "message": outcome.get("message") or _default_message(job),
        "result": outcome.get("result") if job.status == "completed" else None,
        "error": job.error if job.status in ("failed", "cancelled") else None,
        "created_at": iso(job.created_at),
        "updated_at": iso(updated),
        "directory_path": job.parameters.get("directory_path"),
    }


def _default_message(job: Job) -> str:
    return {
        "queued": "Directory processing queued",
        "processing": "Processing",
        "completed": "Directory processed",
        "failed": "Directory processing failed",
        "cancelled": "Cancelled",
    }.get(job.status, job.status)


class DirectoryTask:
    def __init__(self, store: JobStore, library: ImageLibrary, publish: Publish) -> None:
        self._store = store
        self._library = library
        self._publish = publish

    def submit(self, directory: Path, *, recursive: bool, force: bool) -> Job:
        parameters = {
            "directory_path": str(directory),
            "recursive": recursive,
            "force_reprocess": force,
        }
        return self._store.create(KIND, parameters, directory.name, "", job_id=new_task_id())

    async def __call__(self, job: Job) -> None:
        try:
            await self.run(job)
        except (Unavailable, JobCancelled):
            # The runner waits out an unreachable Triton and runs the task again (no final
            # event yet); a cancelled task is not a failure.
            raise
        except Exception as exc:
            reason = getattr(exc, "detail", None) or f"internal error ({type(exc).__name__})"
            self._publish("processing", {"type": "task_failed", "task_id": job.id, "error": reason})
            raise

    async def run(self, job: Job) -> None:
        roots = self._library.roots
        directory = roots.existing_directory(job.parameters["directory_path"])
        paths = await asyncio.to_thread(
            lambda: list(
                image_files(
                    roots,
                    directory,
                    recursive=bool(job.parameters.get("recursive")),
                    limit=self._library.settings.context_max_directory_files,
                )
            )
        )
        self._record(job.id, 0.0, f"Found {len(paths)} images")

        def progress(done: int, total: int, last: str) -> None:
            if not self._store.holds(job.id):
                raise JobCancelled("the task was cancelled")
            percent = 100.0 * done / max(1, total)
            self._record(job.id, min(percent, 99.9), f"Processing image {done} of {total}")

        outcome = await self._library.process_paths(
            paths, force=bool(job.parameters.get("force_reprocess")), progress=progress
        )
        result = directory_result(outcome, self._library.warning())
        await asyncio.to_thread(
            self._store.set_outcome,
            job.id,
            {
                "progress": 100.0,
                "message": result["message"],
                "result": result,
                "updated_at": time.time(),
            },
        )
        if await asyncio.to_thread(self._store.complete, job.id, None, None, None):
            self._publish(
                "processing", {"type": "task_completed", "task_id": job.id, "result": result}
            )

    def _record(self, job_id: str, percent: float, message: str) -> None:
        self._store.set_outcome(
            job_id, {"progress": round(percent, 1), "message": message, "updated_at": time.time()}
        )
        self._store.set_progress(job_id, int(percent))
        self._publish(
            "processing",
            {
                "type": "task_progress",
                "task_id": job_id,
                "status": "processing",
                "progress": round(percent, 1),
                "message": message,
            },
        )
