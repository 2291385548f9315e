"""The scale-out vector store: PostgreSQL with pgvector, for several gateways sharing one store.

One table holds each image's metadata and one `vector(dim)` column per space, each with an HNSW
index on cosine distance (`vector_cosine_ops`), so an upsert or a delete is one statement on one
row. Searches order by `<=>` (cosine distance) and read the index with pgvector's iterative scan
(0.8+) in strict order, so an objects filter still fills `k` results instead of filtering down
the first ef_search candidates. HNSW is approximate: on large tables a search can miss a true
neighbour that the embedded store's exact scan would find. `nearest_pairs` is exact: it reads
the space's vectors (n × dim × 4 bytes) and compares them in tiles here. The schema is created
idempotently, under an advisory lock so two gateways starting together do not race. Vectors
travel in pgvector's binary format."""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from gateway.errors import Unavailable
from gateway.postgres import KEEPALIVES, NOT_A_URL, driver_reason
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

TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")  # its index names stay under 63 characters
# pgvector's HNSW default ef_search is 40 and it takes at most 1000; k above that is still
# answered by the iterative scan.
EF_SEARCH = (40, 1000)
Connection = psycopg.Connection[tuple[Any, ...]]


class PgVectorStore:
    """Thread-safe: one connection behind a lock, reopened when the server dropped it."""

    def __init__(
        self,
        url: str,
        spaces: Mapping[str, int] = DEFAULT_SPACES,
        table: str = "facet_images",
        connect_timeout_s: int = 10,
    ) -> None:
        if not TABLE_NAME.fullmatch(table):
            raise ValueError(f"table name {table!r} must match {TABLE_NAME.pattern}")
        self._url, self._table, self._timeout = url, table, connect_timeout_s
        self._lock = threading.Lock()
        self._conn = self._open()
        with self._session() as conn:
            self._spaces = self._prepare(conn, check_spaces(spaces))
            self._iterative = _pgvector_version(conn) >= (0, 8)
            _register_vector(conn)
        self._columns = _record_columns(self._spaces)

    @property
    def spaces(self) -> Mapping[str, int]:
        return dict(self._spaces)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def upsert(
        self, image_id: str, vectors: Mapping[str, npt.ArrayLike], metadata: Mapping[str, Any]
    ) -> VectorRecord:
        unit = normalise_all(vectors, self._spaces)
        fields = record_fields(metadata)
        query, values = self._upsert_statement(image_id, fields, unit)
        with self._session() as conn:
            row = conn.execute(query, values, binary=True).fetchone()
        assert row is not None
        return self._record(row)

    def get(self, image_id: str) -> VectorRecord | None:
        found = self._records("WHERE id = %s", (image_id,))
        return found[0] if found else None

    def get_vector(self, image_id: str, space: str) -> Vector | None:
        space_dim(self._spaces, space)
        with self._session() as conn:
            row = conn.execute(
                f"SELECT vec_{space} FROM {self._table} WHERE id = %s", (image_id,), binary=True
            ).fetchone()
        return None if row is None or row[0] is None else np.asarray(row[0], dtype=np.float32)

    def delete(self, image_id: str) -> bool:
        with self._session() as conn:
            cursor = conn.execute(f"DELETE FROM {self._table} WHERE id = %s", (image_id,))
            return cursor.rowcount == 1

    def delete_many(self, image_ids: Sequence[str]) -> int:
        with self._session() as conn, conn.transaction():
            cursor = conn.execute(
                f"DELETE FROM {self._table} WHERE id = ANY(%s::text[])", (list(image_ids),)
            )
            return cursor.rowcount

    def list(
        self, limit: int = 100, offset: int = 0, objects: Sequence[str] | None = None
    ) -> Records:
        check_page(limit, offset)
        names = object_names(objects)
        where = "" if names is None else "WHERE objects && %(objects)s::text[]"
        return self._records(
            f"{where} ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s",
            {"objects": names, "limit": limit, "offset": offset},
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
        statement = (
            f"SELECT {self._columns}, vec_{space} <=> %(q)b FROM {self._table}"
            f" WHERE vec_{space} IS NOT NULL"
            + ("" if names is None else " AND objects && %(objects)s::text[]")
            + f" ORDER BY vec_{space} <=> %(q)b LIMIT %(k)s"
        )
        with self._session() as conn, conn.transaction():
            self._tune_scan(conn, k)
            rows = conn.execute(statement, {"q": query, "objects": names, "k": k}, binary=True)
            hits = [hit(self._record(row[:-1]), 1.0 - float(row[-1])) for row in rows]
        return [h for h in hits if min_score is None or h.score >= min_score]

    def search_many(
        self,
        space: str,
        query_vectors: npt.ArrayLike,
        k: int = 10,
        min_score: float | None = None,
    ) -> HitLists:
        """One statement: a LATERAL nearest-k scan of the HNSW index per query row."""
        queries = normalise_rows(query_vectors, space_dim(self._spaces, space), space)
        check_search(k, min_score)
        if not len(queries):
            return []
        rows_sql = ", ".join(f"({n}, %(q{n})b)" for n in range(len(queries)))
        statement = (
            f"SELECT q.n, t.* FROM (VALUES {rows_sql}) AS q(n, v) CROSS JOIN LATERAL ("
            f"SELECT {self._columns}, vec_{space} <=> q.v FROM {self._table}"
            f" WHERE vec_{space} IS NOT NULL ORDER BY vec_{space} <=> q.v LIMIT %(k)s) AS t"
            " ORDER BY q.n"
        )
        values: dict[str, Any] = {f"q{n}": query for n, query in enumerate(queries)}
        values["k"] = k
        found: HitLists = [[] for _ in queries]
        with self._session() as conn, conn.transaction():
            self._tune_scan(conn, k)
            for row in conn.execute(statement, values, binary=True):
                found[int(row[0])].append(hit(self._record(row[1:-1]), 1.0 - float(row[-1])))
        return [[h for h in hits if min_score is None or h.score >= min_score] for hits in found]

    def nearest_pairs(self, space: str, threshold: float, limit: int = 10_000) -> Pairs:
        space_dim(self._spaces, space)
        with self._session() as conn:
            rows = conn.execute(
                f"SELECT id, vec_{space} FROM {self._table} WHERE vec_{space} IS NOT NULL"
                " ORDER BY seq",
                binary=True,
            ).fetchall()
        if not rows:
            return []
        ids = [str(row[0]) for row in rows]
        matrix = np.stack([np.asarray(row[1], dtype=np.float32) for row in rows])
        # Rows come in seq order and pairs have i < j: the first of each was stored first.
        return [
            DuplicatePair(ids[i], ids[j], min(1.0, score))
            for i, j, score in similar_pairs(matrix, threshold, limit)
        ]

    def find_by_hash(self, content_hash: str) -> Records:
        return self._records("WHERE content_hash = %s ORDER BY seq", (content_hash,))

    def count(self) -> int:
        with self._session() as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()
        return int(row[0]) if row else 0

    # -- connection --------------------------------------------------------------------------

    def _open(self) -> Connection:
        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._timeout, **KEEPALIVES
            )
        except psycopg.ProgrammingError:  # its message quotes the URL, password and all
            raise ValueError(NOT_A_URL) from None
        except psycopg.OperationalError as exc:
            raise Unavailable(f"the vector database is unreachable: {driver_reason(exc)}") from exc

    @contextmanager
    def _session(self) -> Iterator[Connection]:
        """The lock, a live connection, and a lost server reported as 503 rather than a 500."""
        with self._lock:
            try:
                if self._conn.closed or self._conn.broken:
                    self._conn = self._open()
                    _register_vector(self._conn)
                yield self._conn
            except psycopg.OperationalError as exc:
                raise Unavailable(f"the vector database failed: {driver_reason(exc)}") from exc

    # -- schema ------------------------------------------------------------------------------

    def _prepare(self, conn: Connection, declared: dict[str, int]) -> dict[str, int]:
        table = self._table
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"facet:{table}",))
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"
                " id TEXT PRIMARY KEY, path TEXT, caption TEXT, content_hash TEXT,"
                " objects TEXT[] NOT NULL DEFAULT '{}', metadata JSONB NOT NULL,"
                " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_objects ON {table} USING gin (objects)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_hash ON {table} (content_hash)")
            spaces = merge_spaces(declared, _stored_spaces(conn, table))
            for name, dim in spaces.items():
                conn.execute(
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS vec_{name} vector({dim})"
                )
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_{name}_hnsw ON {table}"
                    f" USING hnsw (vec_{name} vector_cosine_ops)"
                )
        return spaces

    # -- statements --------------------------------------------------------------------------

    def _upsert_statement(
        self, image_id: str, fields: RecordFields, unit: Mapping[str, Vector]
    ) -> tuple[str, dict[str, Any]]:
        """One INSERT … ON CONFLICT: every space column is written, so a space left out of
        this upsert loses its old vector."""
        vector_columns = [f"vec_{name}" for name in self._spaces]
        columns = ["id", "path", "caption", "content_hash", "objects", "metadata", *vector_columns]
        marks = [f"%({c})s" for c in columns[:6]] + [f"%({c})b" for c in vector_columns]
        replaced = [*columns[1:], "updated_at"]
        statement = (
            f"INSERT INTO {self._table} ({', '.join(columns)}, created_at, updated_at)"
            f" VALUES ({', '.join(marks)}, %(now)s, %(now)s) ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in replaced)
            + f" RETURNING {self._columns}"
        )
        values: dict[str, Any] = {
            "id": image_id,
            "path": fields.path,
            "caption": fields.caption,
            "content_hash": fields.content_hash,
            "objects": list(fields.objects),
            "metadata": Jsonb(fields.metadata),
            "now": time.time(),
        }
        values.update({f"vec_{name}": unit.get(name) for name in self._spaces})
        return statement, values

    def _tune_scan(self, conn: Connection, k: int) -> None:
        low, high = EF_SEARCH
        ef_search = str(min(high, max(low, k)))
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (ef_search,))
        if self._iterative:
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")

    def _records(self, tail: str, values: Sequence[Any] | Mapping[str, Any]) -> Records:
        with self._session() as conn:
            rows = conn.execute(
                f"SELECT {self._columns} FROM {self._table} {tail}", values, binary=True
            ).fetchall()
        return [self._record(row) for row in rows]

    def _record(self, row: Sequence[Any]) -> VectorRecord:
        image_id, path, caption, content_hash, objects, metadata, created, updated = row[:8]
        has_vector = row[8:]
        return VectorRecord(
            id=image_id,
            path=path,
            caption=caption,
            objects=tuple(objects),
            content_hash=content_hash,
            metadata=metadata,
            spaces=tuple(sorted(n for n, has in zip(self._spaces, has_vector, strict=True) if has)),
            created_at=float(created),
            updated_at=float(updated),
        )


def _record_columns(spaces: Mapping[str, int]) -> str:
    fixed = "id, path, caption, content_hash, objects, metadata, created_at, updated_at"
    return ", ".join([fixed, *(f"vec_{name} IS NOT NULL" for name in spaces)])


def _stored_spaces(conn: Connection, table: str) -> dict[str, int]:
    """pgvector keeps a column's dimension as its type modifier."""
    rows = conn.execute(
        "SELECT attname, atttypmod FROM pg_attribute WHERE attrelid = %s::regclass"
        " AND attname LIKE 'vec\\_%%' AND NOT attisdropped",
        (table,),
    ).fetchall()
    return {str(name).removeprefix("vec_"): int(dim) for name, dim in rows}


def _pgvector_version(conn: Connection) -> tuple[int, ...]:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert row is not None
    return tuple(int(part) for part in re.findall(r"\d+", str(row[0]))[:3])


class _VectorDumper(Dumper):
    """pgvector's binary input: dimension (uint16), unused (uint16), big-endian float32s."""

    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer | None:
        vector = np.asarray(obj, dtype=">f4")
        return struct.pack(">HH", vector.shape[0], 0) + vector.tobytes()


class _VectorLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> Any:
        (dim,) = struct.unpack_from(">H", data)
        return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)


def _register_vector(conn: Connection) -> None:
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise Unavailable("the vector database has no pgvector extension")
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
    conn.adapters.register_dumper(np.ndarray, dumper)
    conn.adapters.register_loader(info.oid, _VectorLoader)
