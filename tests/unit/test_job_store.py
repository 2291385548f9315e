"""Job states move only along allowed edges, survive reopening the database, and leases keep a
running job with one gateway: on the embedded SQLite store and on the shared PostgreSQL one."""

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.jobs.recovery import recover_jobs
from gateway.jobs.store import JobStore
from gateway.storage import FileStore

StoreFactory = Callable[..., JobStore]


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens stores on one database; each call stands for another gateway (its own owner)."""
    if request.param == "sqlite":
        from gateway.jobs.sqlite_store import SqliteJobStore

        def sqlite(**options: Any) -> JobStore:
            return SqliteJobStore(tmp_path / "jobs.db", **options)

        return sqlite
    from gateway.jobs.postgres_store import PostgresJobStore

    url = request.getfixturevalue("postgres_url")
    table = f"jobs_{uuid.uuid4().hex[:12]}"

    def postgres(**options: Any) -> JobStore:
        return PostgresJobStore(url, table=table, **options)

    return postgres


def make_job(store: JobStore) -> str:
    return store.create("upscale", {"scale": 2}, "a.png", "/nowhere").id


def age(store: JobStore, job_id: str, column: str, seconds: float) -> None:
    """Move one timestamp of a job into the past (the clock is the database rows')."""
    with store._session() as db:
        db.run(f"UPDATE {{jobs}} SET {column} = {column} - ? WHERE id = ?", (seconds, job_id))


def test_a_job_goes_queued_processing_completed(new_store: StoreFactory) -> None:
    store = new_store()
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


def test_a_job_is_claimed_by_one_worker_only(new_store: StoreFactory) -> None:
    store = new_store()
    job_id = make_job(store)
    assert store.claim(job_id) is not None
    assert store.claim(job_id) is None


def test_a_cancelled_job_cannot_complete_or_be_claimed(new_store: StoreFactory) -> None:
    store = new_store()
    queued, running = make_job(store), make_job(store)
    store.claim(running)
    assert store.cancel(queued) and store.cancel(running)
    assert store.claim(queued) is None
    assert not store.complete(running, "rid", "/r.png", "image/png")
    assert store.status_of(running) == "cancelled"
    assert not store.cancel(running), "a finished job cannot be cancelled again"


def test_jobs_survive_reopening_the_store(new_store: StoreFactory) -> None:
    job_id = make_job(new_store())
    reopened = new_store()
    assert reopened.status_of(job_id) == "queued"
    assert reopened.totals().by_status["queued"] == 1


def test_totals_count_finished_jobs_and_average_their_time(new_store: StoreFactory) -> None:
    store = new_store()
    for _ in range(2):
        job_id = make_job(store)
        store.claim(job_id)
        store.complete(job_id, job_id, "/r", "image/png")
    failing = make_job(store)
    store.claim(failing)
    store.fail(failing, "bad")
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


def test_recovery_at_start_requeues_interrupted_jobs_and_fails_them_when_attempts_run_out(
    tmp_path: Path,
) -> None:
    from gateway.jobs.sqlite_store import SqliteJobStore

    store = SqliteJobStore(tmp_path / "jobs.db")
    retried, exhausted, lost, waiting = (make_job(store) for _ in range(4))
    store.claim(retried)
    store.claim(exhausted)
    store.requeue(exhausted, "first try died")
    store.release(exhausted)  # that run ended
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


def test_results_older_than_the_ttl_are_deleted_with_their_files(
    new_store: StoreFactory, tmp_path: Path
) -> None:
    from gateway.services import expire_results

    store = new_store()
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    old, fresh, running = make_job(store), make_job(store), make_job(store)
    paths = {}
    for job_id in (old, fresh):
        store.claim(job_id)
        result_id, path = files.save_result(b"png bytes", "PNG")
        store.complete(job_id, result_id, str(path), "image/png")
        paths[job_id] = path
    store.claim(running)
    age(store, old, "completed_at", 7200)
    assert expire_results(store, files, ttl_s=3600) == 1
    assert store.get(old) is None and not paths[old].exists()
    assert store.get(fresh) is not None and paths[fresh].exists()
    assert store.status_of(running) == "processing"


def test_concurrent_submitters_never_overshoot_the_queue_cap(new_store: StoreFactory) -> None:
    # Two stores on one database stand for two gateways; 50 submitters race for 10 places.
    stores = [new_store(), new_store()]
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


def test_admission_refuses_only_while_the_active_jobs_fill_the_cap(new_store: StoreFactory) -> None:
    store = new_store()
    first = store.admit("upscale", {}, "a.png", "", max_active=1)
    assert first is not None
    assert store.admit("upscale", {}, "b.png", "", max_active=1) is None
    store.claim(first.id)
    store.complete(first.id, None, None, None)
    assert store.admit("upscale", {}, "c.png", "", max_active=1) is not None


def test_a_running_job_belongs_to_its_gateway_and_others_cannot_write_its_result(
    new_store: StoreFactory,
) -> None:
    mine, other = new_store(), new_store()
    job_id = make_job(mine)
    assert mine.claim(job_id) is not None
    assert mine.holds(job_id) and not other.holds(job_id)
    assert not other.complete(job_id, "rid", "/r.png", "image/png")
    assert not other.requeue(job_id, "not mine")
    other.set_progress(job_id, 50)
    assert mine.get(job_id).progress == 0  # type: ignore[union-attr]
    assert mine.complete(job_id, "rid", "/r.png", "image/png")


def test_a_renewed_lease_is_never_taken_over(new_store: StoreFactory) -> None:
    alive, survivor = new_store(lease_s=0.5), new_store(lease_s=0.5)
    job_id = make_job(alive)
    alive.claim(job_id)
    for _ in range(4):
        time.sleep(0.25)
        assert alive.renew_leases() == 1
        taken = survivor.take_over_expired(2, reason="gone")
        assert taken.requeued == [] and taken.failed == []
    assert alive.holds(job_id)


def test_an_expired_lease_is_taken_over_exactly_once_by_racing_gateways(
    new_store: StoreFactory,
) -> None:
    dead = new_store(lease_s=0.2)
    job_ids = [make_job(dead) for _ in range(5)]
    for job_id in job_ids:
        dead.claim(job_id)
    time.sleep(0.3)
    survivors = [new_store(lease_s=0.2) for _ in range(4)]
    start = threading.Barrier(len(survivors))
    taken: list[str] = []

    def sweep(store: JobStore) -> None:
        start.wait()
        taken.extend(store.take_over_expired(2, reason="its gateway stopped answering").requeued)

    threads = [threading.Thread(target=sweep, args=(store,)) for store in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(job_ids), "each job requeued once, none missed"
    assert all(dead.status_of(job_id) == "queued" for job_id in job_ids)
    assert not dead.complete(job_ids[0], "late", "/late.png", "image/png"), (
        "the dead gateway's late result is refused once its job was taken over"
    )
    assert not dead.fail(job_ids[1], "late failure"), "and so is its late failure"
    assert dead.status_of(job_ids[1]) == "queued"


def test_a_taken_over_job_with_no_attempts_left_fails_with_the_reason(
    new_store: StoreFactory,
) -> None:
    dead, survivor = new_store(lease_s=0.1), new_store(lease_s=0.1)
    job_id = make_job(dead)
    dead.claim(job_id)
    time.sleep(0.2)
    taken = survivor.take_over_expired(1, reason="its gateway stopped answering")
    assert taken.failed == [job_id]
    failed = survivor.get(job_id)
    assert failed is not None and failed.status == "failed"
    assert "stopped answering" in (failed.error or "")


def test_a_cancel_from_another_gateway_ends_the_runner_s_hold(new_store: StoreFactory) -> None:
    runner, api = new_store(), new_store()
    job_id = make_job(runner)
    runner.claim(job_id)
    assert api.cancel(job_id)
    assert not runner.holds(job_id)
    assert runner.renew_leases() == 0


def test_a_queued_job_whose_message_was_lost_is_sent_again_only_after_a_lease_period(
    new_store: StoreFactory, tmp_path: Path
) -> None:
    store = new_store(lease_s=60)
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    fresh, lost = make_job(store), make_job(store)
    age(store, lost, "queued_at", 120)
    queue = FakeQueue()
    report = recover_jobs(store, queue, files, 2, at_start=False)  # type: ignore[arg-type]
    assert report.re_enqueued == [lost] and queue.enqueued == [lost]
    assert store.status_of(fresh) == "queued"


def test_a_job_is_not_claimed_again_in_one_gateway_while_its_earlier_run_there_goes_on(
    new_store: StoreFactory,
) -> None:
    gateway, survivor = new_store(lease_s=0.1), new_store(lease_s=0.1)
    job_id = make_job(gateway)
    gateway.claim(job_id)  # the run goes on, but its lease lapses
    time.sleep(0.2)
    assert survivor.take_over_expired(2, reason="gone").requeued == [job_id]
    assert gateway.claim(job_id) is None, "both runs would pass the owner guard"
    gateway.release(job_id)  # the first run noticed it lost the job and ended
    claimed = gateway.claim(job_id)
    assert claimed is not None and claimed.attempts == 2
