"""The job runner waits out an unreachable Triton without spending attempts, and a job that
recovery gives up on loses its upload at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.errors import Unavailable
from gateway.jobs import runner as runner_module
from gateway.jobs.recovery import recover_jobs
from gateway.jobs.runner import JobRunner
from gateway.jobs.sqlite_store import SqliteJobStore as JobStore
from gateway.jobs.store import Job
from gateway.storage import FileStore
from tests.unit.test_job_store import FakeQueue


class FlakyHandler:
    """Fails like a restarting Triton `failures` times, then completes the job."""

    def __init__(self, store: JobStore, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.calls = 0

    async def __call__(self, job: Job) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise Unavailable("inference server unavailable", retry_after=1)
        self.store.complete(job.id, None, None, None)


def run_job(tmp_path: Path, failures: int, window_s: float, monkeypatch) -> tuple[Job, int]:
    monkeypatch.setattr(runner_module, "FIRST_PAUSE_S", 0.01)
    monkeypatch.setattr(runner_module, "MAX_PAUSE_S", 0.02)
    store = JobStore(tmp_path / "jobs.db")
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    job = store.create("upscale", {}, "a.png", "")
    handler = FlakyHandler(store, failures)

    async def scenario() -> None:
        runner = JobRunner(
            store,
            files,
            {"upscale": handler},
            asyncio.get_running_loop(),
            max_attempts=2,
            unavailable_window_s=window_s,
        )
        await runner.run(job.id)

    asyncio.run(scenario())
    finished = store.get(job.id)
    assert finished is not None
    return finished, handler.calls


def test_a_job_waits_out_a_triton_restart_within_the_window_on_one_attempt(tmp_path, monkeypatch):
    job, calls = run_job(tmp_path, failures=5, window_s=30.0, monkeypatch=monkeypatch)
    assert job.status == "completed" and job.attempts == 1 and calls == 6


def test_past_the_window_the_unavailability_counts_as_an_attempt(tmp_path, monkeypatch):
    job, calls = run_job(tmp_path, failures=1000, window_s=0.05, monkeypatch=monkeypatch)
    assert job.status == "queued" and job.attempts == 1  # requeued for its second attempt
    assert "unavailable" in (job.error or "") and calls >= 2


def test_recovery_removes_the_upload_of_a_job_it_fails(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    upload = files.save_upload(b"image bytes")
    job = store.create("upscale", {}, "a.png", str(upload))
    store.claim(job.id)
    store.requeue(job.id, "interrupted")
    store.release(job.id)  # that run ended
    store.claim(job.id)
    report = recover_jobs(store, FakeQueue(), files, max_attempts=2)  # type: ignore[arg-type]
    assert report.failed == [job.id] and not upload.exists()
