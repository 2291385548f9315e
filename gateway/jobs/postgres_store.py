"""The shared job store: one PostgreSQL table that several gateways use at once.

Leases (gateway/jobs/store.py) keep a job with one gateway while it runs; admissions take a
transaction-scoped advisory lock, so the queue cap holds over all gateways together."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from gateway.errors import Unavailable
from gateway.jobs.store import COLUMNS, DEFAULT_LEASE_S, LATER_COLUMNS, JobStore, Session
from gateway.postgres import KEEPALIVES, NOT_A_URL, driver_reason

TABLE = "facet_jobs"
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
Connection = psycopg.Connection[DictRow]
# Every wait bounded: a statement or a lock wait (the admission lock held by a frozen gateway)
# gives up after seconds, so the heartbeat never blocks for a lease's length.
TIMEOUTS = "-c lock_timeout=5000 -c statement_timeout=20000"


def _postgres_sql(sql: str, table: str) -> str:
    # The shared SQL has no literal '?' or '%': placeholders are the only ones.
    return sql.replace("{jobs}", table).replace("?", "%s")


def _postgres_columns(columns: str) -> str:
    return columns.replace(" REAL", " DOUBLE PRECISION")


class PostgresJobStore(JobStore):
    """One connection behind a lock, reopened when the server dropped it; a lost server is a
    503 (Unavailable), never a 500."""

    shared = True
    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        table: str = TABLE,
        connect_timeout_s: int = 10,
    ) -> None:
        if not TABLE_NAME.fullmatch(table):
            raise ValueError(f"table name {table!r} must match {TABLE_NAME.pattern}")
        super().__init__(owner, lease_s)
        self._url, self._timeout, self._table = url, connect_timeout_s, table
        self._lock = threading.Lock()
        self._conn = self._open()
        self._prepare()

    def _open(self) -> Connection:
        try:
            return psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._timeout,
                row_factory=dict_row,
                options=TIMEOUTS,
                **KEEPALIVES,
            )
        except psycopg.ProgrammingError:  # its message quotes the URL, password and all
            raise ValueError(NOT_A_URL) from None
        except psycopg.OperationalError as exc:
            raise Unavailable(f"the job database is unreachable: {driver_reason(exc)}") from exc

    def _prepare(self) -> None:
        table = self._table
        with self._lock, self._conn.transaction():
            # Gateways starting together must not race each other's CREATE TABLE.
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_postgres_columns(COLUMNS)})")
            for name, kind in LATER_COLUMNS.items():
                column = _postgres_columns(f" {kind}").strip()
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {column}")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_status ON {table}(status)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _execute(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[DictRow]:
        return self._conn.execute(_postgres_sql(sql, self._table), tuple(params))

    @contextmanager
    def _session(self, *, exclusive: bool = False) -> Iterator[Session]:
        with self._lock:
            try:
                if self._conn.closed or self._conn.broken:
                    self._conn = self._open()
                session = Session(self._execute)
                if not exclusive:
                    yield session
                    return
                with self._conn.transaction():
                    self._conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self._table}:admit",)
                    )
                    yield session
            except psycopg.OperationalError as exc:
                raise Unavailable(f"the job database failed: {driver_reason(exc)}") from exc
