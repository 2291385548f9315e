"""Job states move only along allowed edges, and survive reopening the database."""

from pathlib import Path

from gateway.jobs.recovery import recover_jobs
from gateway.jobs.store import JobStore
from gateway.storage import FileStore


def make_job(store: JobStore) -> str:
    return store.create("upscale", {"scale": 2}, "a.png", "/nowhere").id


def test_a_job_goes_queued_processing_completed(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job_id = make_job(store)
    claimed = store.claim(job_id)
    assert claimed is not None and claimed.status == "processing" and claimed.attempts == 1
    store.set_progress(job_id, 40)
    assert store.get(job_id).progress == 40  # type: ignore[union-attr]
    assert store.complete(job_id, "rid", "/r.png", "image/png")
    job = store.get(job_id)
    assert job is not None and job.status == "completed" and job.progress == 100
    assert job.processing_time is not None and job.processing_time >= 0
    assert store.get_by_result("rid") == job


def test_a_job_is_claimed_by_one_worker_only(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    job_id = make_job(store)
    assert store.claim(job_id) is not None
    assert store.claim(job_id) is None


def test_a_cancelled_job_cannot_complete_or_be_claimed(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    queued, running = make_job(store), make_job(store)
    store.claim(running)
    assert store.cancel(queued) and store.cancel(running)
    assert store.claim(queued) is None
    assert not store.complete(running, "rid", "/r.png", "image/png")
    assert store.status_of(running) == "cancelled"
    assert not store.cancel(running), "a finished job cannot be cancelled again"


def test_jobs_survive_reopening_the_store(tmp_path: Path) -> None:
    job_id = make_job(JobStore(tmp_path / "jobs.db"))
    reopened = JobStore(tmp_path / "jobs.db")
    assert reopened.status_of(job_id) == "queued"
    assert reopened.totals().by_status["queued"] == 1


def test_totals_count_finished_jobs_and_average_their_time(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for _ in range(2):
        job_id = make_job(store)
        store.claim(job_id)
        store.complete(job_id, job_id, "/r", "image/png")
    store.fail(make_job(store), "bad")
    totals = store.totals()
    assert totals.total_processed == 3 and totals.by_status["completed"] == 2
    assert totals.average_processing_time is not None


class FakeQueue:
    """Stands in for huey in this pure-logic test: records what would be enqueued."""

    def __init__(self, pending: set[str] | None = None) -> None:
        self.enqueued: list[str] = []
        self._pending = pending or set()

    def enqueue(self, job_id: str) -> None:
        self.enqueued.append(job_id)

    def pending_ids(self) -> set[str]:
        return set(self._pending)


def test_recovery_requeues_interrupted_jobs_and_fails_them_when_attempts_run_out(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    retried, exhausted, lost, waiting = (make_job(store) for _ in range(4))
    store.claim(retried)
    store.claim(exhausted)
    store.requeue(exhausted, "first try died")
    store.claim(exhausted)  # second attempt, also interrupted
    queue = FakeQueue(pending={waiting})
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    report = recover_jobs(store, queue, files, max_attempts=2)  # type: ignore[arg-type]
    assert report.requeued == [retried] and report.failed == [exhausted]
    assert report.re_enqueued == [lost]
    assert sorted(queue.enqueued) == sorted([retried, lost])
    failed = store.get(exhausted)
    assert failed is not None and "restart" in (failed.error or "")
    assert store.status_of(waiting) == "queued"


def test_results_older_than_the_ttl_are_deleted_with_their_files(tmp_path: Path) -> None:
    from gateway.services import expire_results
    from gateway.storage import FileStore

    store = JobStore(tmp_path / "jobs.db")
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    old, fresh, running = make_job(store), make_job(store), make_job(store)
    paths = {}
    for job_id in (old, fresh):
        store.claim(job_id)
        result_id, path = files.save_result(b"png bytes", "PNG")
        store.complete(job_id, result_id, str(path), "image/png")
        paths[job_id] = path
    store.claim(running)
    store._db.execute("UPDATE jobs SET completed_at = completed_at - 7200 WHERE id = ?", (old,))
    assert expire_results(store, files, ttl_s=3600) == 1
    assert store.get(old) is None and not paths[old].exists()
    assert store.get(fresh) is not None and paths[fresh].exists()
    assert store.status_of(running) == "processing"


def test_concurrent_submitters_never_overshoot_the_queue_cap(tmp_path: Path) -> None:
    import threading

    # Two stores on one database stand for two gateways; 50 submitters race for 10 places.
    stores = [JobStore(tmp_path / "jobs.db"), JobStore(tmp_path / "jobs.db")]
    admitted: list[str] = []
    start = threading.Barrier(50)

    def submit(index: int) -> None:
        start.wait()
        store = stores[index % 2]
        job = store.admit("upscale", {}, "a.png", "", max_active=10)
        if job is not None:
            admitted.append(job.id)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 10
    assert stores[0].count_active() == 10


def test_admission_refuses_only_while_the_active_jobs_fill_the_cap(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first = store.admit("upscale", {}, "a.png", "", max_active=1)
    assert first is not None
    assert store.admit("upscale", {}, "b.png", "", max_active=1) is None
    store.claim(first.id)
    store.complete(first.id, None, None, None)
    assert store.admit("upscale", {}, "c.png", "", max_active=1) is not None
