"""The embedded job store: one SQLite file that one gateway owns (the default)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.jobs.store import COLUMNS, DEFAULT_LEASE_S, LATER_COLUMNS, JobStore, Session

TABLE = "jobs"


class SqliteJobStore(JobStore):
    """One connection guarded by a lock (calls are sub-millisecond)."""

    shared = False
    backend = "sqlite"

    def __init__(
        self, path: Path, *, owner: str | None = None, lease_s: float = DEFAULT_LEASE_S
    ) -> None:
        super().__init__(owner, lease_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + synchronous=NORMAL: a crash loses at most the last transactions, never corrupts.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS})")
        self._add_later_columns()
        self._db.execute(f"CREATE INDEX IF NOT EXISTS jobs_status ON {TABLE}(status)")

    def _add_later_columns(self) -> None:
        present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({TABLE})")}
        for name, kind in LATER_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        return self._db.execute(sql.replace("{jobs}", TABLE), params)

    @contextmanager
    def _session(self, *, exclusive: bool = False) -> Iterator[Session]:
        with self._lock:
            session = Session(self._execute)
            if not exclusive:
                yield session
                return
            # IMMEDIATE takes the write lock at once: another process's admission waits here.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield session
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
