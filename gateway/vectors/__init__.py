"""Image records and their embeddings: one `VectorStore` contract, two implementations.

`sqlite` (the default) is embedded: one SQLite file with sqlite-vec beside the job store.
`postgres` is PostgreSQL with pgvector (HNSW indexes), for several gateways sharing one store."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.vectors.store import DEFAULT_SPACES, VectorStore

if TYPE_CHECKING:
    from gateway.settings import Settings


def open_vector_store(
    settings: Settings,
    spaces: Mapping[str, int] = DEFAULT_SPACES,
    *,
    path: Path | None = None,
    table: str = "facet_images",
) -> VectorStore:
    """The store `FACET_VECTOR_STORE` names; each imports its database driver only when chosen.
    `path` (embedded) and `table` (PostgreSQL) keep another collection apart: the face gallery
    is stored beside the images, never in their table."""
    if settings.vector_store == "postgres":
        url = settings.postgres_url.get_secret_value()
        if not url:
            raise ValueError("FACET_VECTOR_STORE=postgres needs FACET_POSTGRES_URL")
        from gateway.vectors.pgvector import PgVectorStore

        return PgVectorStore(url, spaces, table=table)
    from gateway.vectors.sqlite_vec import SqliteVecStore

    return SqliteVecStore(path or settings.vector_database_path, spaces)
