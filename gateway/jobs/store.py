"""Durable job records: the source of truth for every job's state, behind one `JobStore`.

The queue (huey) only carries job ids; whatever happens to a queue message, the row here says
what the client sees. Every transition is one UPDATE guarded by the state it leaves, so a
cancel and a completion racing each other cannot both win.

Leases make a job its gateway's while it runs: `claim` stamps the row with this gateway's
`owner` and an expiry that a heartbeat (`renew_leases`) keeps pushing back, and every later
write of the run (progress, outcome, completion, requeue) is refused unless the row still names
this owner. A gateway that dies stops renewing; `take_over_expired` then gives its jobs back to
the queue (or fails them when their attempts are spent) in one guarded UPDATE, which exactly one
surviving gateway wins. Two implementations share all the SQL below: `SqliteJobStore` (one
gateway, the default) and `PostgresJobStore` (several; gateway/jobs/postgres_store.py)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gateway.settings import Settings

JobStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "processing")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")
DEFAULT_LEASE_S = 30.0

# Columns of one job row, in both databases (REAL and TEXT mean the same in PostgreSQL once
# the type names are mapped: see postgres_store.py).
COLUMNS = """
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    parameters TEXT NOT NULL,
    original_filename TEXT NOT NULL,
    input_path TEXT NOT NULL,
    result_id TEXT UNIQUE,
    result_path TEXT,
    result_media_type TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    processing_time REAL,
    outcome TEXT,
    queued_at REAL,
    lease_owner TEXT,
    lease_expires_at REAL
"""
# Columns added after the first release: added in place to databases created before them.
LATER_COLUMNS = {
    "outcome": "TEXT",
    "queued_at": "REAL",
    "lease_owner": "TEXT",
    "lease_expires_at": "REAL",
}
# Not fields of a Job: how the store itself keeps runs apart.
LEASE_COLUMNS = ("queued_at", "lease_owner", "lease_expires_at")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: JobStatus
    progress: int
    parameters: dict[str, Any]
    original_filename: str
    input_path: str
    result_id: str | None
    result_path: str | None
    result_media_type: str | None
    error: str | None
    attempts: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    processing_time: float | None
    # Per-kind details of the result (e.g. a batch's per-URL outcomes), JSON in the database.
    outcome: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobTotals:
    by_status: dict[str, int]
    total_processed: int
    average_processing_time: float | None


@dataclass(frozen=True)
class TakeOver:
    """What one sweep of expired leases did: jobs back in the queue, jobs failed for good."""

    requeued: list[str]
    failed: list[str]


class Session:
    """The store's SQL (`?` placeholders, a `{jobs}` table) on one database: `execute` is the
    database's own, after it has translated both; its rows read like mappings."""

    def __init__(self, execute: Callable[[str, Sequence[Any]], Any]) -> None:
        self._execute = execute

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._execute(sql, tuple(params)).rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self._execute(sql, tuple(params)).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._execute(sql, tuple(params)).fetchall()]

    def ids(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """The `id` column of an UPDATE … RETURNING id."""
        return [str(row["id"]) for row in self._execute(sql, tuple(params)).fetchall()]


def new_owner() -> str:
    """A name for this gateway process that no other process, here or on another host, has."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobStore(ABC):
    """Thread-safe; `owner` names this gateway in the leases it takes."""

    # Whether other gateways may hold leases in the same database (then start-up takes over
    # only expired leases; an embedded store's leases all belong to dead predecessors).
    shared: bool = False
    backend: str = ""

    def __init__(self, owner: str | None = None, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.owner = owner or new_owner()
        self.lease_s = lease_s
        # Jobs a run of this process holds or held and has not finished: a lease is this
        # gateway's, not one run's, so a second claim of the same job here (its lease lapsed,
        # another gateway requeued it, its message came back) must wait for the first run to
        # end, or both runs would pass the owner guard.
        self._local_runs: set[str] = set()
        self._local_lock = threading.Lock()

    @abstractmethod
    def _session(self, *, exclusive: bool = False) -> AbstractContextManager[Session]:
        """A session; `exclusive` holds other writers of admissions off until it ends."""

    @abstractmethod
    def close(self) -> None: ...

    def _changed_one(self, sql: str, params: Sequence[Any]) -> bool:
        """Run one guarded UPDATE; whether it moved the job (it did not when the guard failed)."""
        with self._session() as db:
            return db.run(sql, params) == 1

    def ping(self) -> bool:
        """Whether the database answers (for /health)."""
        try:
            with self._session() as db:
                return db.one("SELECT 1 AS ok") is not None
        except Exception:
            return False

    def create(
        self,
        kind: str,
        parameters: dict[str, Any],
        original_filename: str,
        input_path: str,
        *,
        job_id: str | None = None,
    ) -> Job:
        job = self.admit(
            kind, parameters, original_filename, input_path, max_active=None, job_id=job_id
        )
        assert job is not None
        return job

    def admit(
        self,
        kind: str,
        parameters: dict[str, Any],
        original_filename: str,
        input_path: str,
        *,
        max_active: int | None,
        job_id: str | None = None,
    ) -> Job | None:
        """Create a queued job, unless `max_active` jobs are already queued or processing
        (then None). Count and insert run in one exclusive transaction: concurrent submitters,
        in this process or another gateway on the same database, cannot overshoot the cap.
        `job_id` defaults to a random UUID; an API with its own id shape passes one."""
        job_id = job_id or str(uuid.uuid4())
        now = time.time()
        row = (job_id, kind, json.dumps(parameters), original_filename, input_path, now, now)
        with self._session(exclusive=True) as db:
            if max_active is not None and _active(db) >= max_active:
                return None
            db.run(
                "INSERT INTO {jobs} (id, kind, status, parameters, original_filename,"
                " input_path, created_at, queued_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                row,
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._session() as db:
            row = db.one("SELECT * FROM {jobs} WHERE id = ?", (job_id,))
        return _to_job(row) if row else None

    def get_by_result(self, result_id: str) -> Job | None:
        with self._session() as db:
            row = db.one("SELECT * FROM {jobs} WHERE result_id = ?", (result_id,))
        return _to_job(row) if row else None

    def claim(self, job_id: str) -> Job | None:
        """queued → processing under this gateway's lease; None when the job is gone or no
        longer queued (cancelled, or another worker took it), and while an earlier run of it
        in this process has not ended (`release`)."""
        with self._local_lock:
            if job_id in self._local_runs:
                return None
            self._local_runs.add(job_id)
        now = time.time()
        try:
            with self._session() as db:
                claimed = db.run(
                    "UPDATE {jobs} SET status = 'processing', attempts = attempts + 1,"
                    " started_at = ?, progress = 0, lease_owner = ?, lease_expires_at = ?"
                    " WHERE id = ? AND status = 'queued'",
                    (now, self.owner, now + self.lease_s, job_id),
                )
        except BaseException:
            self.release(job_id)
            raise
        if claimed != 1:
            self.release(job_id)
            return None
        return self.get(job_id)

    def release(self, job_id: str) -> None:
        """The run of `job_id` in this process has ended: whoever claimed it says so last,
        after its final write."""
        with self._local_lock:
            self._local_runs.discard(job_id)

    def renew_leases(self) -> int:
        """Push back the expiry of every job this gateway runs (the heartbeat)."""
        with self._session() as db:
            return db.run(
                "UPDATE {jobs} SET lease_expires_at = ?"
                " WHERE lease_owner = ? AND status = 'processing'",
                (time.time() + self.lease_s, self.owner),
            )

    def holds(self, job_id: str) -> bool:
        """Whether this gateway still runs `job_id` (not cancelled, not taken over)."""
        with self._session() as db:
            row = db.one(
                "SELECT 1 AS held FROM {jobs} WHERE id = ? AND status = 'processing'"
                " AND lease_owner = ?",
                (job_id, self.owner),
            )
        return row is not None

    def take_over_expired(
        self, max_attempts: int, *, reason: str, everything: bool = False
    ) -> TakeOver:
        """Jobs whose lease ran out (their gateway died or hung): back to the queue while
        attempts are left, failed with `reason` otherwise. `everything` takes every running
        job, expired or not (an embedded store at start-up: its runners are all gone)."""
        now = time.time()
        expired = "status = 'processing'" + (
            "" if everything else " AND (lease_expires_at IS NULL OR lease_expires_at < ?)"
        )
        when: tuple[Any, ...] = () if everything else (now,)
        with self._session() as db:
            requeued = db.ids(
                "UPDATE {jobs} SET status = 'queued', progress = 0, error = ?, queued_at = ?,"
                f" lease_owner = NULL, lease_expires_at = NULL WHERE {expired}"
                " AND attempts < ? RETURNING id",
                (f"{reason}; running it again", now, *when, max_attempts),
            )
            failed = db.ids(
                "UPDATE {jobs} SET status = 'failed', error = ?, completed_at = ?,"
                f" lease_owner = NULL, lease_expires_at = NULL WHERE {expired}"
                " AND attempts >= ? RETURNING id",
                (f"{reason} after the last of its attempts", now, *when, max_attempts),
            )
        return TakeOver(sorted(requeued), sorted(failed))

    def stale_queued(self, older_than: float) -> list[str]:
        """Queued jobs waiting since before `older_than` (their queue message may be lost)."""
        with self._session() as db:
            return [
                row["id"]
                for row in db.all(
                    "SELECT id FROM {jobs} WHERE status = 'queued'"
                    " AND COALESCE(queued_at, created_at) < ? ORDER BY created_at",
                    (older_than,),
                )
            ]

    def set_outcome(self, job_id: str, outcome: dict[str, Any]) -> None:
        with self._session() as db:
            db.run(
                "UPDATE {jobs} SET outcome = ? WHERE id = ? AND status = 'processing'"
                " AND lease_owner = ?",
                (json.dumps(outcome), job_id, self.owner),
            )

    def set_progress(self, job_id: str, percent: int) -> None:
        with self._session() as db:
            db.run(
                "UPDATE {jobs} SET progress = ? WHERE id = ? AND status = 'processing'"
                " AND lease_owner = ?",
                (max(0, min(99, percent)), job_id, self.owner),
            )

    def complete(
        self, job_id: str, result_id: str | None, result_path: str | None, media_type: str | None
    ) -> bool:
        now = time.time()
        return self._changed_one(
            "UPDATE {jobs} SET status = 'completed', progress = 100, result_id = ?,"
            " result_path = ?, result_media_type = ?, completed_at = ?,"
            " processing_time = ? - started_at, lease_owner = NULL,"
            " lease_expires_at = NULL"
            " WHERE id = ? AND status = 'processing' AND lease_owner = ?",
            (result_id, result_path, media_type, now, now, job_id, self.owner),
        )

    def fail(self, job_id: str, reason: str) -> bool:
        """A job this gateway runs ends failed with `reason` (one it lost is left alone: the
        gateway that took it over may have requeued it with attempts left)."""
        return self._changed_one(
            "UPDATE {jobs} SET status = 'failed', error = ?, completed_at = ?,"
            " lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND status = 'processing' AND lease_owner = ?",
            (reason, time.time(), job_id, self.owner),
        )

    def requeue(self, job_id: str, reason: str) -> bool:
        """processing → queued (a retryable failure); the reason is kept."""
        return self._changed_one(
            "UPDATE {jobs} SET status = 'queued', error = ?, progress = 0, queued_at = ?,"
            " lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND status = 'processing' AND lease_owner = ?",
            (reason, time.time(), job_id, self.owner),
        )

    def cancel(self, job_id: str) -> bool:
        """queued or processing → cancelled, from any gateway; the runner notices and stops."""
        return self._changed_one(
            "UPDATE {jobs} SET status = 'cancelled', completed_at = ?,"
            " lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND status IN ('queued', 'processing')",
            (time.time(), job_id),
        )

    def status_of(self, job_id: str) -> JobStatus | None:
        with self._session() as db:
            row = db.one("SELECT status FROM {jobs} WHERE id = ?", (job_id,))
        return row["status"] if row else None

    def ids_with_status(self, status: JobStatus) -> list[str]:
        with self._session() as db:
            rows = db.all("SELECT id FROM {jobs} WHERE status = ? ORDER BY created_at", (status,))
        return [row["id"] for row in rows]

    def list_kind(self, kind: str, limit: int = 100) -> list[Job]:
        """The newest jobs of one kind first."""
        with self._session() as db:
            rows = db.all(
                "SELECT * FROM {jobs} WHERE kind = ? ORDER BY created_at DESC LIMIT ?",
                (kind, limit),
            )
        return [_to_job(row) for row in rows]

    def count_active(self) -> int:
        with self._session() as db:
            return _active(db)

    def totals(self) -> JobTotals:
        with self._session() as db:
            rows = db.all("SELECT status, COUNT(*) AS n FROM {jobs} GROUP BY status")
            avg = db.one("SELECT AVG(processing_time) AS t FROM {jobs} WHERE status = 'completed'")
        by_status: dict[str, int] = {status: 0 for status in (*ACTIVE, *FINISHED)}
        by_status.update({row["status"]: int(row["n"]) for row in rows})
        processed = sum(by_status[s] for s in FINISHED)
        average = float(avg["t"]) if avg and avg["t"] is not None else None
        return JobTotals(by_status, processed, average)

    def expired(self, older_than: float) -> list[Job]:
        """Finished jobs whose completion is older than `older_than` (a timestamp)."""
        with self._session() as db:
            rows = db.all(
                "SELECT * FROM {jobs} WHERE status IN ('completed', 'failed', 'cancelled')"
                " AND completed_at < ?",
                (older_than,),
            )
        return [_to_job(row) for row in rows]

    def delete(self, job_id: str) -> None:
        with self._session() as db:
            db.run("DELETE FROM {jobs} WHERE id = ?", (job_id,))


def _active(db: Session) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM {jobs} WHERE status IN ('queued', 'processing')")
    return int(row["n"]) if row else 0


def _to_job(row: dict[str, Any]) -> Job:
    data = {key: value for key, value in row.items() if key not in LEASE_COLUMNS}
    data["parameters"] = json.loads(data["parameters"])
    data["outcome"] = json.loads(data["outcome"]) if data.get("outcome") else None
    return Job(**data)


def open_job_store(settings: Settings) -> JobStore:
    """The store `FACET_JOB_STORE` names; PostgreSQL's driver is imported only when chosen."""
    if settings.job_store == "postgres":
        url = settings.postgres_url.get_secret_value()
        if not url:
            raise ValueError("FACET_JOB_STORE=postgres needs FACET_POSTGRES_URL")
        from gateway.jobs.postgres_store import PostgresJobStore

        return PostgresJobStore(url, lease_s=settings.job_lease_s)
    from gateway.jobs.sqlite_store import SqliteJobStore

    return SqliteJobStore(settings.database_path, lease_s=settings.job_lease_s)
