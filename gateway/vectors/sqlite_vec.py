"""The embedded vector store: one SQLite file holds each image's metadata and its vectors, written
in one transaction, with the sqlite-vec extension (`vec0` tables, one per space) loaded through
apsw (this Python's sqlite3 module cannot load extensions).

Deletes are real: `secure_delete` overwrites freed rows and pages with zeros, and sqlite-vec
zeroes a deleted vector inside its chunk, so once the WAL is checkpointed the file no longer
holds a deleted image's caption or embedding. Queries are scored against an exact in-memory copy
of each space (`ExactIndex`, why in exact.py), loaded on first use and reloaded whenever another
connection (another process) has committed, which `PRAGMA data_version` tells."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import apsw
import numpy as np
import numpy.typing as npt
import sqlite_vec

from gateway.vectors.exact import ExactIndex
from gateway.vectors.store import (
    DEFAULT_SPACES,
    DuplicatePair,
    HitLists,
    Hits,
    Pairs,
    RecordFields,
    Records,
    Vector,
    VectorRecord,
    check_page,
    check_search,
    check_spaces,
    hit,
    merge_spaces,
    normalise,
    normalise_all,
    normalise_rows,
    object_names,
    record_fields,
    similar_pairs,
    space_dim,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the rowid of the image's vectors in every vec0 table
    id TEXT NOT NULL UNIQUE,
    path TEXT,
    caption TEXT,
    content_hash TEXT,
    objects TEXT NOT NULL,
    metadata TEXT NOT NULL,
    spaces TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_content_hash ON images(content_hash);
CREATE TABLE IF NOT EXISTS image_objects (
    object TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (object, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_objects_seq ON image_objects(seq);
CREATE TABLE IF NOT EXISTS vector_spaces (name TEXT PRIMARY KEY, dim INTEGER NOT NULL);
"""
COLUMNS = "seq, id, path, caption, content_hash, objects, metadata, spaces, created_at, updated_at"
UPSERT = """
INSERT INTO images (id, path, caption, content_hash, objects, metadata, spaces, created_at,
                    updated_at)
VALUES (:id, :path, :caption, :content_hash, :objects, :metadata, :spaces, :now, :now)
ON CONFLICT (id) DO UPDATE SET path = excluded.path, caption = excluded.caption,
    content_hash = excluded.content_hash, objects = excluded.objects,
    metadata = excluded.metadata, spaces = excluded.spaces, updated_at = excluded.updated_at
RETURNING seq
"""
Rows = list[tuple[Any, ...]]  # `list` is a method name inside the store class
WITH_OBJECTS = "seq IN (SELECT seq FROM image_objects WHERE object IN ({marks}))"


class SqliteVecStore:
    """Thread-safe like JobStore: one connection and the in-memory indexes behind one lock."""

    def __init__(self, path: Path, spaces: Mapping[str, int] = DEFAULT_SPACES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = _connect(path)
        self._spaces = self._prepare(check_spaces(spaces))
        self._indexes: dict[str, ExactIndex] = {}
        self._data_version = self._read_data_version()

    @property
    def spaces(self) -> Mapping[str, int]:
        return dict(self._spaces)

    def close(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._db.close()

    def checkpoint(self, attempts: int = 5) -> bool:
        """Fold the WAL into the main file and empty it; False when a reader of another
        connection kept it busy through every attempt."""
        for attempt in range(attempts):
            with self._lock:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0]
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1))
        return False

    def upsert(
        self, image_id: str, vectors: Mapping[str, npt.ArrayLike], metadata: Mapping[str, Any]
    ) -> VectorRecord:
        unit = normalise_all(vectors, self._spaces)
        fields = record_fields(metadata)
        with self._lock:
            self._refresh()
            with self._write():
                seq = self._upsert_row(image_id, fields, sorted(unit))
                self._replace_vectors(seq, unit)
            self._mirror_upsert(seq, unit)
            return self._records_where("WHERE seq = ?", (seq,))[0]

    def get(self, image_id: str) -> VectorRecord | None:
        with self._lock:
            found = self._records_where("WHERE id = ?", (image_id,))
        return found[0] if found else None

    def get_vector(self, image_id: str, space: str) -> Vector | None:
        space_dim(self._spaces, space)
        with self._lock:
            rows = self._rows(
                f"SELECT v.embedding FROM vec_{space} AS v JOIN images AS i ON v.rowid = i.seq"
                " WHERE i.id = ?",
                (image_id,),
            )
        return np.frombuffer(rows[0][0], dtype=np.float32).copy() if rows else None

    def delete(self, image_id: str) -> bool:
        with self._lock:
            self._refresh()
            with self._write():
                seq = self._seq_of(image_id)
                if seq is not None:
                    self._delete_rows(seq)
            if seq is None:
                return False
            for index in self._indexes.values():
                index.remove(seq)
            return True

    def delete_many(self, image_ids: Sequence[str]) -> int:
        with self._lock:
            self._refresh()
            with self._write():
                seqs = [seq for seq in map(self._seq_of, dict.fromkeys(image_ids)) if seq]
                for seq in seqs:
                    self._delete_rows(seq)
            for index in self._indexes.values():
                for seq in seqs:
                    index.remove(seq)
            return len(seqs)

    def list(
        self, limit: int = 100, offset: int = 0, objects: Sequence[str] | None = None
    ) -> Records:
        check_page(limit, offset)
        where, values = _objects_filter(object_names(objects))
        with self._lock:
            return self._records_where(
                f"{where} ORDER BY seq LIMIT ? OFFSET ?", (*values, limit, offset)
            )

    def search(
        self,
        space: str,
        query_vector: npt.ArrayLike,
        k: int = 10,
        min_score: float | None = None,
        objects: Sequence[str] | None = None,
    ) -> Hits:
        query = normalise(query_vector, space_dim(self._spaces, space), space)
        check_search(k, min_score)
        names = object_names(objects)
        with self._lock:
            self._refresh()
            allowed = None if names is None else self._seqs_with_objects(names)
            best = self._index(space).top(query, k, min_score, allowed)
            records = self._records_by_seq([seq for seq, _ in best])
        return [hit(records[seq], score) for seq, score in best if seq in records]

    def search_many(
        self,
        space: str,
        query_vectors: npt.ArrayLike,
        k: int = 10,
        min_score: float | None = None,
    ) -> HitLists:
        queries = normalise_rows(query_vectors, space_dim(self._spaces, space), space)
        check_search(k, min_score)
        with self._lock:
            self._refresh()
            best = self._index(space).top_many(queries, k, min_score)
            records = self._records_by_seq(sorted({seq for row in best for seq, _ in row}))
        return [[hit(records[seq], score) for seq, score in row if seq in records] for row in best]

    def nearest_pairs(self, space: str, threshold: float, limit: int = 10_000) -> Pairs:
        space_dim(self._spaces, space)
        with self._lock:
            self._refresh()
            index = self._index(space)
            keys = index.keys().copy()
            pairs = similar_pairs(index.matrix(), threshold, limit)
            ids = self._ids_by_seq({int(keys[row]) for pair in pairs for row in pair[:2]})
        return [_ordered_pair(keys, ids, pair) for pair in pairs]

    def find_by_hash(self, content_hash: str) -> Records:
        with self._lock:
            return self._records_where("WHERE content_hash = ? ORDER BY seq", (content_hash,))

    def count(self) -> int:
        with self._lock:
            return int(self._rows("SELECT COUNT(*) FROM images")[0][0])

    # -- schema ------------------------------------------------------------------------------

    def _prepare(self, declared: dict[str, int]) -> dict[str, int]:
        with self._write():
            self._db.execute(SCHEMA)
            stored = {str(n): int(d) for n, d in self._rows("SELECT name, dim FROM vector_spaces")}
            spaces = merge_spaces(declared, stored)
            for name, dim in spaces.items():
                self._db.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS vec_{name} USING vec0("
                    f"embedding float[{dim}] distance_metric=cosine)"
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO vector_spaces (name, dim) VALUES (?, ?)", (name, dim)
                )
        return spaces

    # -- writes (the caller holds the lock) ---------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: a second process writing the same file waits for the lock up front
        instead of failing halfway when its read turns into a write."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _upsert_row(self, image_id: str, fields: RecordFields, spaces: Sequence[str]) -> int:
        row = {
            "id": image_id,
            "path": fields.path,
            "caption": fields.caption,
            "content_hash": fields.content_hash,
            "objects": json.dumps(list(fields.objects)),
            "metadata": fields.metadata_json,
            "spaces": json.dumps(sorted(spaces)),
            "now": time.time(),
        }
        seq = int(self._rows(UPSERT, row)[0][0])
        self._db.execute("DELETE FROM image_objects WHERE seq = ?", (seq,))
        self._db.executemany(
            "INSERT INTO image_objects (object, seq) VALUES (?, ?)",
            [(name, seq) for name in fields.objects],
        )
        return seq

    def _replace_vectors(self, seq: int, unit: Mapping[str, Vector]) -> None:
        """vec0 has no upsert: every old vector goes (zeroed by sqlite-vec), the new ones come."""
        for name in self._spaces:
            self._db.execute(f"DELETE FROM vec_{name} WHERE rowid = ?", (seq,))
        for name, vector in unit.items():
            self._db.execute(
                f"INSERT INTO vec_{name} (rowid, embedding) VALUES (?, ?)", (seq, vector.tobytes())
            )

    def _delete_rows(self, seq: int) -> None:
        for name in self._spaces:
            self._db.execute(f"DELETE FROM vec_{name} WHERE rowid = ?", (seq,))
        self._db.execute("DELETE FROM image_objects WHERE seq = ?", (seq,))
        self._db.execute("DELETE FROM images WHERE seq = ?", (seq,))

    def _mirror_upsert(self, seq: int, unit: Mapping[str, Vector]) -> None:
        for name, index in self._indexes.items():
            if name in unit:
                index.put(seq, unit[name])
            else:
                index.remove(seq)

    # -- reads (the caller holds the lock) ----------------------------------------------------

    def _rows(self, statement: str, values: Sequence[Any] | Mapping[str, Any] = ()) -> Rows:
        return cast(Rows, self._db.execute(statement, values).fetchall())

    def _read_data_version(self) -> int:
        return int(self._rows("PRAGMA data_version")[0][0])

    def _refresh(self) -> None:
        """Another connection committed: the in-memory copies may be stale, so rebuild them."""
        version = self._read_data_version()
        if version != self._data_version:
            self._indexes.clear()
            self._data_version = version

    def _index(self, space: str) -> ExactIndex:
        if space not in self._indexes:
            keys, matrix = read_vectors(self._db, space, self._spaces[space])
            self._indexes[space] = ExactIndex.of(keys, matrix)
        return self._indexes[space]

    def _seq_of(self, image_id: str) -> int | None:
        rows = self._rows("SELECT seq FROM images WHERE id = ?", (image_id,))
        return int(rows[0][0]) if rows else None

    def _seqs_with_objects(self, names: Sequence[str]) -> npt.NDArray[np.int64]:
        marks = ",".join("?" * len(names))
        rows = self._rows(
            f"SELECT DISTINCT seq FROM image_objects WHERE object IN ({marks})", names
        )
        return np.array([row[0] for row in rows], dtype=np.int64)

    def _records_where(self, tail: str, values: Sequence[Any]) -> Records:
        rows = self._rows(f"SELECT {COLUMNS} FROM images {tail}", values)
        return [_record(row) for row in rows]

    def _records_by_seq(self, seqs: Sequence[int]) -> dict[int, VectorRecord]:
        found: dict[int, VectorRecord] = {}
        for start in range(0, len(seqs), 500):  # SQLite caps the parameters of one statement
            part = seqs[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._rows(f"SELECT {COLUMNS} FROM images WHERE seq IN ({marks})", part)
            found.update((int(row[0]), _record(row)) for row in rows)
        return found

    def _ids_by_seq(self, seqs: set[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        ordered = sorted(seqs)
        for start in range(0, len(ordered), 500):  # SQLite caps the parameters of one statement
            part = ordered[start : start + 500]
            rows = self._rows(
                f"SELECT seq, id FROM images WHERE seq IN ({','.join('?' * len(part))})", part
            )
            found.update((int(seq), str(image_id)) for seq, image_id in rows)
        return found


def read_vectors(
    db: apsw.Connection, space: str, dim: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Every (rowid, vector) of a space. Reading `vec0` row by row costs ~100 µs a row (10 s
    for 100 k), so this reads its shadow tables, sqlite-vec 0.1's layout: `_rowids` says which
    chunk and offset hold each live row, `_vector_chunks00` holds each chunk's vectors as one
    blob. A file laid out otherwise is read the slow way, through the table itself."""
    try:
        return _read_chunks(db, space, dim)
    except (apsw.SQLError, ValueError, IndexError):
        return _read_rows(db, space, dim)


def _read_chunks(
    db: apsw.Connection, space: str, dim: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    located = db.execute(f"SELECT rowid, chunk_id, chunk_offset FROM vec_{space}_rowids")
    where = np.array(located.fetchall(), dtype=np.int64).reshape(-1, 3)
    matrix = np.zeros((len(where), dim), dtype=np.float32)
    filled = 0
    for chunk_id, blob in db.execute(f"SELECT rowid, vectors FROM vec_{space}_vector_chunks00"):
        chunk = np.frombuffer(cast(bytes, blob), dtype=np.float32).reshape(-1, dim)
        mine = where[:, 1] == chunk_id
        matrix[mine] = chunk[where[mine, 2]]
        filled += int(mine.sum())
    if filled != len(where):
        raise ValueError("a row points at a chunk that is not there")
    return where[:, 0].copy(), matrix


def _read_rows(
    db: apsw.Connection, space: str, dim: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    rows = db.execute(f"SELECT rowid, embedding FROM vec_{space}").fetchall()
    keys = np.array([row[0] for row in rows], dtype=np.int64)
    matrix = np.zeros((len(rows), dim), dtype=np.float32)
    for i, (_, blob) in enumerate(rows):
        matrix[i] = np.frombuffer(cast(bytes, blob), dtype=np.float32)
    return keys, matrix


def _connect(path: Path) -> apsw.Connection:
    db = apsw.Connection(str(path))
    db.enable_load_extension(True)
    db.load_extension(sqlite_vec.loadable_path())
    db.enable_load_extension(False)  # no SQL text can load a library after this one
    db.set_busy_timeout(10_000)
    # WAL + synchronous=NORMAL as in the job store; secure_delete so deletes leave no bytes behind.
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA secure_delete=ON")
    return db


def _objects_filter(names: list[str] | None) -> tuple[str, list[str]]:
    if names is None:
        return "", []
    if not names:
        return "WHERE 0", []
    return "WHERE " + WITH_OBJECTS.format(marks=",".join("?" * len(names))), names


def _record(row: Sequence[Any]) -> VectorRecord:
    _, image_id, path, caption, content_hash, objects, metadata, spaces, created, updated = row
    return VectorRecord(
        id=image_id,
        path=path,
        caption=caption,
        objects=tuple(json.loads(objects)),
        content_hash=content_hash,
        metadata=json.loads(metadata),
        spaces=tuple(json.loads(spaces)),
        created_at=float(created),
        updated_at=float(updated),
    )


def _ordered_pair(
    keys: npt.NDArray[np.int64], ids: Mapping[int, str], pair: tuple[int, int, float]
) -> DuplicatePair:
    """Rows move around in the index; the row number stored first (smaller seq) comes first."""
    first, second = sorted((int(keys[pair[0]]), int(keys[pair[1]])))
    return DuplicatePair(ids[first], ids[second], min(1.0, pair[2]))
