"""The gallery's audit trail: who was enrolled, deleted or expired, and when; never a face.

A row holds an event name, a person id, a count of faces, a reason and a time. No name, no
embedding, no image: the trail outlives the data it records, so it must not become a copy of
it. Its own SQLite file (stdlib sqlite3, WAL), beside the gallery."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Event = Literal["enrolled", "face_deleted", "person_deleted", "expired"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    person_id TEXT NOT NULL,
    faces INTEGER NOT NULL,
    reason TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class AuditEntry:
    at: float
    event: str
    person_id: str
    faces: int
    reason: str


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)

    def record(self, event: Event, person_id: str, faces: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO audit (at, event, person_id, faces, reason) VALUES (?, ?, ?, ?, ?)",
                (time.time(), event, person_id, faces, reason),
            )

    def entries(self, person_id: str | None = None) -> list[AuditEntry]:
        where, values = ("WHERE person_id = ?", (person_id,)) if person_id else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT at, event, person_id, faces, reason FROM audit {where} ORDER BY seq",
                values,
            ).fetchall()
        return [AuditEntry(float(a), str(e), str(p), int(f), str(r)) for a, e, p, f, r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
