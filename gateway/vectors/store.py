"""The vector store's contract: image records with embeddings in named spaces, found by cosine.

A record is one image: its id, the metadata it was stored with (path, caption, detected objects,
content hash and anything else) and at most one vector per space ("clip": CLIP ViT-B/32 image and
text embeddings, 512-d; "text": all-MiniLM-L6-v2 caption embeddings, 384-d). Vectors are
L2-normalised on the way in, queries too, so for a stored v and a query q

    score    = cos(q, v) = q · v        in [-1, 1], higher is nearer
    distance = 1 - score                in [0, 2]  (pgvector's `<=>`, sqlite-vec's cosine)

which is how the seed's search answer shows them (score 0.85, distance 0.15). Bad input (an
unknown space, a vector of the wrong size, NaN, a zero vector, metadata that is not JSON) raises
ValueError in every implementation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

# The models behind them: CLIP ViT-B/32 (both towers) and the seed's sentence transformer.
DEFAULT_SPACES: Mapping[str, int] = {"clip": 512, "text": 384}

# Space names become table and column names: only these are ever spliced into SQL.
SPACE_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
# Metadata keys the stores keep in columns of their own (filters and look-ups use them).
OWN_COLUMNS = ("path", "caption", "objects", "content_hash")


@dataclass(frozen=True)
class VectorRecord:
    id: str
    path: str | None
    caption: str | None
    objects: tuple[str, ...]
    content_hash: str | None
    metadata: dict[str, Any]  # everything upsert was given, the four fields above included
    spaces: tuple[str, ...]  # the spaces this record has a vector in, sorted
    created_at: float  # first upsert; a later upsert of the same id keeps it
    updated_at: float


class SearchHit(NamedTuple):
    record: VectorRecord
    score: float  # cosine similarity
    distance: float  # 1 - score


class DuplicatePair(NamedTuple):
    first: str  # the record stored first
    second: str
    score: float


Records = list[VectorRecord]
Hits = list[SearchHit]
HitLists = list[Hits]  # one Hits per query of search_many
Pairs = list[DuplicatePair]


class VectorStore(Protocol):
    """Thread-safe. `objects` filters keep records that list any of the given object names."""

    @property
    def spaces(self) -> Mapping[str, int]: ...

    def upsert(
        self, image_id: str, vectors: Mapping[str, npt.ArrayLike], metadata: Mapping[str, Any]
    ) -> VectorRecord:
        """Store or replace the record: metadata and vectors all at once, in one transaction.
        A space left out of `vectors` has no vector for this record afterwards."""
        ...

    def get(self, image_id: str) -> VectorRecord | None: ...

    def get_vector(self, image_id: str, space: str) -> Vector | None:
        """The stored (normalised) vector."""
        ...

    def delete(self, image_id: str) -> bool:
        """Remove the record and its vectors; False when there was none."""
        ...

    def delete_many(self, image_ids: Sequence[str]) -> int:
        """Remove these records and their vectors in one transaction (all or none); how many
        there were."""
        ...

    def list(
        self, limit: int = 100, offset: int = 0, objects: Sequence[str] | None = None
    ) -> Records:
        """In the order they were first stored."""
        ...

    def search(
        self,
        space: str,
        query_vector: npt.ArrayLike,
        k: int = 10,
        min_score: float | None = None,
        objects: Sequence[str] | None = None,
    ) -> Hits:
        """The `k` nearest records by cosine, nearest first, none scoring below `min_score`."""
        ...

    def search_many(
        self,
        space: str,
        query_vectors: npt.ArrayLike,
        k: int = 10,
        min_score: float | None = None,
    ) -> HitLists:
        """`search` for each row of `query_vectors` [N, dim], answered by one query."""
        ...

    def nearest_pairs(self, space: str, threshold: float, limit: int = 10_000) -> Pairs:
        """Pairs of records whose vectors score >= `threshold`, best first, at most `limit`."""
        ...

    def find_by_hash(self, content_hash: str) -> Records: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RecordFields:
    """What upsert was given, checked: the columns both stores keep, and the JSON text."""

    path: str | None
    caption: str | None
    objects: tuple[str, ...]
    content_hash: str | None
    metadata: dict[str, Any]
    metadata_json: str


def check_spaces(spaces: Mapping[str, int]) -> dict[str, int]:
    checked: dict[str, int] = {}
    for name, dim in spaces.items():
        if not SPACE_NAME.fullmatch(name):
            raise ValueError(f"space name {name!r} must match {SPACE_NAME.pattern}")
        if not isinstance(dim, int) or not 1 <= dim <= 16_000:  # pgvector's limit
            raise ValueError(f"space {name!r}: dimension {dim!r} must be an int in 1..16000")
        checked[name] = dim
    return checked


def merge_spaces(declared: Mapping[str, int], stored: Mapping[str, int]) -> dict[str, int]:
    """The spaces a store serves: those asked for plus those its database already has (so a
    delete still reaches their vectors); a space stored with another dimension is an error."""
    for name, dim in declared.items():
        if name in stored and stored[name] != dim:
            raise ValueError(
                f"space {name!r} is stored with dimension {stored[name]}, not {dim}: "
                "use another database (or table) for a different embedding model"
            )
    return {**stored, **declared}


def normalise(vector: npt.ArrayLike, dim: int, space: str) -> Vector:
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (dim,):
        raise ValueError(f"space {space!r} takes vectors of {dim} values, not shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"space {space!r}: the vector has NaN or infinite values")
    norm = float(np.linalg.norm(array))
    if norm == 0.0:
        raise ValueError(f"space {space!r}: a zero vector has no direction to compare")
    return np.ascontiguousarray(array / norm, dtype=np.float32)


def normalise_all(
    vectors: Mapping[str, npt.ArrayLike], spaces: Mapping[str, int]
) -> dict[str, Vector]:
    unknown = sorted(set(vectors) - set(spaces))
    if unknown:
        raise ValueError(f"unknown vector spaces {unknown}; this store has {sorted(spaces)}")
    return {name: normalise(vector, spaces[name], name) for name, vector in vectors.items()}


def normalise_rows(vectors: npt.ArrayLike, dim: int, space: str) -> npt.NDArray[np.float32]:
    """[N, dim] query rows, each checked and normalised like one vector."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"space {space!r}: queries must be [N, {dim}], not shape {array.shape}")
    rows = [normalise(row, dim, space) for row in array]
    return np.stack(rows) if rows else np.zeros((0, dim), np.float32)


def space_dim(spaces: Mapping[str, int], space: str) -> int:
    if space not in spaces:
        raise ValueError(f"unknown vector space {space!r}; this store has {sorted(spaces)}")
    return spaces[space]


def record_fields(metadata: Mapping[str, Any]) -> RecordFields:
    objects = metadata.get("objects") or []
    if isinstance(objects, str) or not all(isinstance(name, str) for name in objects):
        raise ValueError("metadata 'objects' must be a list of strings")
    text = {key: metadata.get(key) for key in ("path", "caption", "content_hash")}
    for key, value in text.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"metadata {key!r} must be a string")
    try:
        metadata_json = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON: {exc}") from exc
    return RecordFields(
        path=text["path"],
        caption=text["caption"],
        objects=tuple(dict.fromkeys(objects)),
        content_hash=text["content_hash"],
        metadata=json.loads(metadata_json),
        metadata_json=metadata_json,
    )


def check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")


def check_search(k: int, min_score: float | None) -> None:
    if k < 1:
        raise ValueError("k must be >= 1")
    if min_score is not None and not math.isfinite(min_score):
        raise ValueError("min_score must be a finite number")


def object_names(objects: Sequence[str] | None) -> list[str] | None:
    """None: no filter. An empty list filters everything out, like any other list would."""
    return None if objects is None else list(dict.fromkeys(objects))


def hit(record: VectorRecord, score: float) -> SearchHit:
    score = min(1.0, max(-1.0, score))  # float32 rounding can step just outside [-1, 1]
    return SearchHit(record, score, 1.0 - score)


def similar_pairs(
    matrix: npt.NDArray[np.float32], threshold: float, limit: int, block: int = 1024
) -> list[tuple[int, int, float]]:
    """Row pairs (i < j) of unit rows whose dot product is >= threshold, best first, at most
    `limit`. Exact: block × block tiles of one matrix product each keep memory at a few MB."""
    if limit < 1:
        return []
    found: list[tuple[int, int, float]] = []
    n = matrix.shape[0]
    for start in range(0, n, block):
        rows = matrix[start : start + block]
        for other in range(start, n, block):
            found.extend(_tile_pairs(rows, matrix[other : other + block], start, other, threshold))
        if len(found) > 2 * limit:
            found = _best(found, limit)
    return _best(found, limit)


def _tile_pairs(
    rows: npt.NDArray[np.float32],
    columns: npt.NDArray[np.float32],
    row_start: int,
    column_start: int,
    threshold: float,
) -> Iterable[tuple[int, int, float]]:
    scores = rows @ columns.T
    if row_start == column_start:  # a diagonal tile: each pair once, no row with itself
        scores = np.where(np.triu(np.ones(scores.shape, dtype=bool), k=1), scores, -np.inf)
    i, j = np.nonzero(scores >= threshold)
    values = scores[i, j]
    return zip((i + row_start).tolist(), (j + column_start).tolist(), values.tolist(), strict=True)


def _best(found: list[tuple[int, int, float]], limit: int) -> list[tuple[int, int, float]]:
    return sorted(found, key=lambda pair: (-pair[2], pair[0], pair[1]))[:limit]
