"""An in-memory copy of one space's unit vectors, scored exactly with one matrix product.

sqlite-vec's own brute-force KNN runs a scalar loop per vector (its wheel is built without AVX) and
reads every chunk through SQLite: about 80 ms of CPU for 100,000 × 512 on this project's 2-core
machines, against a 50 ms target for the whole search. One BLAS matrix-vector product over the
same vectors is 4–8× faster (perf/vector_search.py measures both and checks they agree), so the
embedded store keeps this copy beside the database (4 bytes per value: 200 MB for 100 k CLIP
vectors) and scores queries here; the database stays the source of truth and rebuilds it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.vectors.store import Vector

Keys = npt.NDArray[np.int64]


class ExactIndex:
    """Vectors keyed by an integer (the store's row number). Not thread-safe: the store's lock
    guards it together with the connection it mirrors."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._keys: Keys = np.zeros(capacity, dtype=np.int64)
        self._matrix = np.zeros((capacity, dim), dtype=np.float32)
        self._size = 0
        self._row_of: dict[int, int] = {}

    @classmethod
    def of(cls, keys: Keys, matrix: npt.NDArray[np.float32]) -> ExactIndex:
        """An index holding these rows (distinct keys), with room to grow."""
        index = cls(matrix.shape[1], capacity=max(1024, len(keys) + len(keys) // 2))
        index._keys[: len(keys)] = keys
        index._matrix[: len(keys)] = matrix
        index._size = len(keys)
        index._row_of = {int(key): row for row, key in enumerate(keys.tolist())}
        return index

    def __len__(self) -> int:
        return self._size

    def put(self, key: int, vector: Vector) -> None:
        row = self._row_of.get(key)
        if row is None:
            row = self._append(key)
        self._matrix[row] = vector

    def remove(self, key: int) -> None:
        """The last row moves into the hole, so the live rows stay one contiguous block."""
        row = self._row_of.pop(key, None)
        if row is None:
            return
        last = self._size - 1
        if row != last:
            moved = int(self._keys[last])
            self._keys[row] = moved
            self._matrix[row] = self._matrix[last]
            self._row_of[moved] = row
        self._matrix[last] = 0.0  # no stale copy of a deleted vector lingers in memory
        self._size = last

    def keys(self) -> Keys:
        return self._keys[: self._size]

    def matrix(self) -> npt.NDArray[np.float32]:
        return self._matrix[: self._size]

    def top(
        self, query: Vector, k: int, min_score: float | None, allowed: Keys | None = None
    ) -> list[tuple[int, float]]:
        """(key, score) of the k best rows, best first; equal scores in key order."""
        keys, matrix = self.keys(), self.matrix()
        if allowed is not None:
            chosen = np.isin(keys, allowed)
            keys, matrix = keys[chosen], matrix[chosen]
        return _best_of(keys, matrix @ query, k, min_score)

    def top_many(
        self, queries: npt.NDArray[np.float32], k: int, min_score: float | None
    ) -> list[list[tuple[int, float]]]:
        """`top` for each query row, scored by one matrix product."""
        keys, scores = self.keys(), self.matrix() @ queries.T
        return [_best_of(keys, scores[:, column], k, min_score) for column in range(len(queries))]

    def _append(self, key: int) -> int:
        if self._size == len(self._keys):
            self._grow()
        row = self._size
        self._keys[row] = key
        self._row_of[key] = row
        self._size += 1
        return row

    def _grow(self) -> None:
        capacity = 2 * len(self._keys)
        keys = np.zeros(capacity, dtype=np.int64)
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        keys[: self._size] = self._keys[: self._size]
        matrix[: self._size] = self._matrix[: self._size]
        self._keys, self._matrix = keys, matrix


def _best_of(
    keys: Keys, scores: npt.NDArray[np.float32], k: int, min_score: float | None
) -> list[tuple[int, float]]:
    """(key, score) of the k best, best first; equal scores in key order."""
    if min_score is not None:
        passing = scores >= min_score
        keys, scores = keys[passing], scores[passing]
    if len(scores) > k:
        best = np.argpartition(-scores, k - 1)[:k]
        keys, scores = keys[best], scores[best]
    order = np.lexsort((keys, -scores))
    return list(zip(keys[order].tolist(), scores[order].tolist(), strict=True))
