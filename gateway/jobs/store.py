"""Durable job records in SQLite: the source of truth for every job's state.

The queue (huey) only carries job ids; whatever happens to a queue message, the row here says
what the client sees. Every transition is one UPDATE guarded by the state it leaves, so a
cancel and a completion racing each other cannot both win."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

JobStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "processing")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
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
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""
# Columns added after the first release: added in place to databases created before them.
LATER_COLUMNS = {"outcome": "TEXT"}


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


class JobStore:
    """Thread-safe: one connection guarded by a lock (calls are sub-millisecond)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + synchronous=NORMAL: a crash loses at most the last transactions, never corrupts.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._add_later_columns()

    def _add_later_columns(self) -> None:
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in LATER_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            yield self._db.cursor()

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
        (then None). Count and insert run in one immediate transaction: concurrent submitters,
        in this process or another one on the same database, cannot overshoot the cap.
        `job_id` defaults to a random UUID; an API with its own id shape passes one."""
        job_id = job_id or str(uuid.uuid4())
        row = (job_id, kind, json.dumps(parameters), original_filename, input_path, time.time())
        with self._cursor() as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                if max_active is not None and _active(cur) >= max_active:
                    cur.execute("ROLLBACK")
                    return None
                cur.execute(
                    "INSERT INTO jobs (id, kind, status, parameters, original_filename,"
                    " input_path, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                    row,
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._cursor() as cur:
            row = cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _to_job(row) if row else None

    def get_by_result(self, result_id: str) -> Job | None:
        with self._cursor() as cur:
            row = cur.execute("SELECT * FROM jobs WHERE result_id = ?", (result_id,)).fetchone()
        return _to_job(row) if row else None

    def claim(self, job_id: str) -> Job | None:
        """queued → processing for one worker; None when the job is gone or no longer queued."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'processing', attempts = attempts + 1, started_at = ?,"
                " progress = 0 WHERE id = ? AND status = 'queued'",
                (time.time(), job_id),
            )
            claimed = cur.rowcount == 1
        return self.get(job_id) if claimed else None

    def set_outcome(self, job_id: str, outcome: dict[str, Any]) -> None:
        with self._cursor() as cur:
            cur.execute("UPDATE jobs SET outcome = ? WHERE id = ?", (json.dumps(outcome), job_id))

    def set_progress(self, job_id: str, percent: int) -> None:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'processing'",
                (max(0, min(99, percent)), job_id),
            )

    def complete(
        self, job_id: str, result_id: str | None, result_path: str | None, media_type: str | None
    ) -> bool:
        now = time.time()
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'completed', progress = 100, result_id = ?,"
                " result_path = ?, result_media_type = ?, completed_at = ?,"
                " processing_time = ? - started_at WHERE id = ? AND status = 'processing'",
                (result_id, result_path, media_type, now, now, job_id),
            )
            return cur.rowcount == 1

    def fail(self, job_id: str, reason: str) -> bool:
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'failed', error = ?, completed_at = ?"
                " WHERE id = ? AND status IN ('queued', 'processing')",
                (reason, time.time(), job_id),
            )
            return cur.rowcount == 1

    def requeue(self, job_id: str, reason: str) -> bool:
        """processing → queued (a retryable failure or a restart); the reason is kept."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'queued', error = ?, progress = 0"
                " WHERE id = ? AND status = 'processing'",
                (reason, job_id),
            )
            return cur.rowcount == 1

    def cancel(self, job_id: str) -> bool:
        """queued or processing → cancelled; a running worker notices and stops."""
        with self._cursor() as cur:
            cur.execute(
                "UPDATE jobs SET status = 'cancelled', completed_at = ?"
                " WHERE id = ? AND status IN ('queued', 'processing')",
                (time.time(), job_id),
            )
            return cur.rowcount == 1

    def status_of(self, job_id: str) -> JobStatus | None:
        with self._cursor() as cur:
            row = cur.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["status"] if row else None

    def ids_with_status(self, status: JobStatus) -> list[str]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY created_at", (status,)
            ).fetchall()
        return [row["id"] for row in rows]

    def list_kind(self, kind: str, limit: int = 100) -> list[Job]:
        """The newest jobs of one kind first."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM jobs WHERE kind = ? ORDER BY created_at DESC LIMIT ?",
                (kind, limit),
            ).fetchall()
        return [_to_job(row) for row in rows]

    def count_active(self) -> int:
        with self._cursor() as cur:
            return _active(cur)

    def totals(self) -> JobTotals:
        with self._cursor() as cur:
            rows = cur.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
            avg = cur.execute(
                "SELECT AVG(processing_time) AS t FROM jobs WHERE status = 'completed'"
            ).fetchone()
        by_status: dict[str, int] = {status: 0 for status in (*ACTIVE, *FINISHED)}
        by_status.update({row["status"]: int(row["n"]) for row in rows})
        processed = sum(by_status[s] for s in FINISHED)
        average = float(avg["t"]) if avg["t"] is not None else None
        return JobTotals(by_status, processed, average)

    def expired(self, older_than: float) -> list[Job]:
        """Finished jobs whose completion is older than `older_than` (a timestamp)."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')"
                " AND completed_at < ?",
                (older_than,),
            ).fetchall()
        return [_to_job(row) for row in rows]

    def delete(self, job_id: str) -> None:
        with self._cursor() as cur:
            cur.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def _active(cur: sqlite3.Cursor) -> int:
    row = cur.execute(
        "SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'processing')"
    ).fetchone()
    return int(row["n"])


def _to_job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["parameters"] = json.loads(data["parameters"])
    data["outcome"] = json.loads(data["outcome"]) if data.get("outcome") else None
    return Job(**data)
