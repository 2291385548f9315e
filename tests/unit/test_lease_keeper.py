"""The heartbeat renews on its own, and takes nothing over right after the store was down."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.jobs.recovery import LeaseKeeper
from gateway.jobs.sqlite_store import SqliteJobStore
from gateway.storage import FileStore
from tests.unit.test_job_store import FakeQueue


class FlakyStore(SqliteJobStore):
    """A real store whose renewals fail while `down` (a lost database connection)."""

    down = False

    def renew_leases(self) -> int:
        if self.down:
            raise ConnectionError("the database went away")
        return super().renew_leases()


def test_after_a_failed_renewal_nothing_is_taken_over_for_a_lease_period(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "jobs.db", lease_s=60)
    other = SqliteJobStore(tmp_path / "jobs.db", lease_s=0.01)
    job_id = other.create("upscale", {}, "a.png", "").id
    other.claim(job_id)  # another gateway's run, its lease expired at once
    time.sleep(0.05)
    files = FileStore(tmp_path / "uploads", tmp_path / "results")
    keeper = LeaseKeeper(store, FakeQueue(), files, max_attempts=2)  # type: ignore[arg-type]
    store.down = True
    keeper.renew()
    store.down = False
    keeper.take_over()
    assert store.status_of(job_id) == "processing", "its gateway may not have renewed yet"
    keeper._failed_at -= 61
    keeper.take_over()
    assert store.status_of(job_id) == "queued"
