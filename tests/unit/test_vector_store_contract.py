"""Every vector store keeps the same contract: each case runs against the embedded sqlite-vec
store and against PostgreSQL + pgvector.

pgvector: the server at FACET_TEST_POSTGRES_URL when that is set; otherwise scripts/pg.sh starts
a throwaway cluster for the session (installing PostgreSQL 15 and pgvector first when they are
missing, as on a fresh CI machine, where it runs as root). Those cases are skipped only when the
script answers that it cannot install here (exit status 3); any other failure fails them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import apsw
import numpy as np
import psycopg
import pytest
import sqlite_vec
from pydantic import SecretStr

from gateway.settings import Settings
from gateway.vectors import open_vector_store
from gateway.vectors.pgvector import PgVectorStore
from gateway.vectors.sqlite_vec import SqliteVecStore, _read_chunks
from gateway.vectors.store import VectorStore

SPACES = {"clip": 16, "text": 8}  # small stand-ins for 512 and 384: the contract is the same

OpenStore = Callable[..., VectorStore]


@pytest.fixture(params=["sqlite", "pgvector"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on this test's own database (or table); each call a new connection."""
    opened: list[VectorStore] = []
    url = request.getfixturevalue("postgres_url") if kind == "pgvector" else ""
    table = f"facet_test_{uuid.uuid4().hex[:12]}"

    def open_one(spaces: Mapping[str, int] = SPACES) -> VectorStore:
        store: VectorStore
        if kind == "sqlite":
            store = SqliteVecStore(tmp_path / "vectors.sqlite3", spaces)
        else:
            store = PgVectorStore(url, spaces, table=table)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
    if url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def store(open_store: OpenStore) -> VectorStore:
    return open_store()


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def random_vectors(count: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)


def metadata(name: str, objects: list[str] | None = None, **extra: object) -> dict[str, object]:
    return {
        "path": f"/photos/{name}.jpg",
        "caption": f"a photo called {name}",
        "objects": objects or [],
        "content_hash": f"hash-{name}",
        **extra,
    }


def put(store: VectorStore, name: str, clip: np.ndarray, objects: list[str] | None = None) -> None:
    store.upsert(name, {"clip": clip}, metadata(name, objects))


def test_an_upserted_record_comes_back_from_get_with_its_metadata(store: VectorStore) -> None:
    clip, text = random_vectors(1, 16)[0], random_vectors(1, 8)[0]
    given = metadata("cat", ["cat", "sofa"], size=[640, 480], format="JPEG")

    stored = store.upsert("img-1", {"clip": clip, "text": text}, given)

    got = store.get("img-1")
    assert got == stored
    assert got is not None and got.id == "img-1"
    assert (got.path, got.caption, got.content_hash) == (
        "/photos/cat.jpg",
        "a photo called cat",
        "hash-cat",
    )
    assert got.objects == ("cat", "sofa")
    assert got.metadata == given
    assert got.spaces == ("clip", "text")
    assert store.get("nobody") is None
    assert store.count() == 1


def test_vectors_are_stored_l2_normalised(store: VectorStore) -> None:
    clip = np.arange(1, 17, dtype=np.float32)
    store.upsert("img", {"clip": clip}, metadata("img"))

    stored = store.get_vector("img", "clip")

    assert stored is not None
    np.testing.assert_allclose(stored, unit(clip), rtol=1e-6)
    assert store.get_vector("img", "text") is None
    assert store.get_vector("nobody", "clip") is None


def test_a_second_upsert_of_the_same_id_replaces_metadata_and_vectors(store: VectorStore) -> None:
    first, second = random_vectors(2, 16)
    original = store.upsert(
        "img", {"clip": first, "text": random_vectors(1, 8)[0]}, metadata("old", ["dog"])
    )

    replaced = store.upsert("img", {"clip": second}, metadata("new", ["cat"]))

    assert store.count() == 1
    assert replaced.caption == "a photo called new" and replaced.objects == ("cat",)
    assert replaced.spaces == ("clip",), "a space left out of the upsert loses its old vector"
    assert store.get_vector("img", "text") is None
    assert replaced.created_at == original.created_at and replaced.updated_at >= original.updated_at
    np.testing.assert_allclose(store.get_vector("img", "clip"), unit(second), rtol=1e-6)  # type: ignore[arg-type]
    assert store.list(objects=["dog"]) == []
    top = store.search("clip", second, k=1)
    assert top[0].record.id == "img" and top[0].score == pytest.approx(1.0, abs=1e-5)


def test_search_ranks_the_nearest_first_with_score_equal_to_cosine(store: VectorStore) -> None:
    vectors = random_vectors(30, 16, seed=1)
    for i, vector in enumerate(vectors):
        put(store, f"img-{i:02d}", vector)
    query = random_vectors(1, 16, seed=2)[0]
    cosines = np.array([unit(v) @ unit(query) for v in vectors])
    expected = [f"img-{i:02d}" for i in np.argsort(-cosines)[:5]]

    hits = store.search("clip", query, k=5)

    assert [h.record.id for h in hits] == expected
    for h in hits:
        index = int(h.record.id.split("-")[1])
        assert h.score == pytest.approx(cosines[index], abs=1e-5)
        assert h.distance == pytest.approx(1.0 - h.score, abs=1e-9)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_returns_every_record_when_k_exceeds_the_count(store: VectorStore) -> None:
    assert store.search("clip", random_vectors(1, 16)[0]) == []
    for i, vector in enumerate(random_vectors(3, 16)):
        put(store, f"img-{i}", vector)

    assert len(store.search("clip", random_vectors(1, 16, seed=5)[0], k=50)) == 3
    assert store.search("text", random_vectors(1, 8)[0]) == [], "no record has a text vector"


def test_min_score_drops_results_below_it(store: VectorStore) -> None:
    query = unit(random_vectors(1, 16, seed=3)[0])
    noise = unit(random_vectors(1, 16, seed=4)[0])
    noise = unit(noise - (noise @ query) * query)  # orthogonal to the query
    for name, cosine in [("close", 0.95), ("middle", 0.6), ("far", 0.1)]:
        put(store, name, cosine * query + np.sqrt(1 - cosine**2) * noise)

    hits = store.search("clip", query, k=10, min_score=0.5)

    assert [h.record.id for h in hits] == ["close", "middle"]
    assert [h.score for h in hits] == pytest.approx([0.95, 0.6], abs=1e-5)
    assert store.search("clip", query, k=10, min_score=0.99) == []


def test_an_objects_filter_keeps_records_listing_any_of_the_objects(store: VectorStore) -> None:
    vectors = random_vectors(4, 16, seed=6)
    put(store, "cat", vectors[0], ["cat", "sofa"])
    put(store, "dog", vectors[1], ["dog"])
    put(store, "both", vectors[2], ["cat", "dog"])
    put(store, "none", vectors[3])

    def found(objects: list[str]) -> set[str]:
        return {h.record.id for h in store.search("clip", vectors[3], k=10, objects=objects)}

    assert found(["cat"]) == {"cat", "both"}
    assert found(["dog", "cat"]) == {"cat", "dog", "both"}
    assert found(["sofa"]) == {"cat"}
    assert found(["giraffe"]) == set()
    assert found([]) == set()
    nearer_cat = (
        "cat"
        if unit(vectors[0]) @ unit(vectors[1]) > unit(vectors[2]) @ unit(vectors[1])
        else "both"
    )
    filtered = store.search("clip", vectors[1], k=1, objects=["cat"])
    assert [h.record.id for h in filtered] == [nearer_cat], "the filter applies before k"


def test_list_pages_in_storage_order_and_filters_by_objects(store: VectorStore) -> None:
    for i, vector in enumerate(random_vectors(7, 16)):
        put(store, f"img-{i}", vector, ["cat"] if i % 2 == 0 else ["dog"])

    assert [r.id for r in store.list()] == [f"img-{i}" for i in range(7)]
    assert [r.id for r in store.list(limit=3, offset=2)] == ["img-2", "img-3", "img-4"]
    assert [r.id for r in store.list(limit=2, offset=1, objects=["cat"])] == ["img-2", "img-4"]
    assert [r.id for r in store.list(objects=["dog", "bird"])] == ["img-1", "img-3", "img-5"]
    assert store.list(offset=7) == []
    assert store.list(limit=0) == []


def test_delete_removes_the_row_and_its_vectors_and_nothing_else(store: VectorStore) -> None:
    gone, kept = random_vectors(2, 16, seed=7)
    store.upsert("gone", {"clip": gone, "text": random_vectors(1, 8)[0]}, metadata("gone", ["cat"]))
    put(store, "kept", kept, ["cat"])

    assert store.delete("gone") is True

    assert store.get("gone") is None
    assert store.get_vector("gone", "clip") is None and store.get_vector("gone", "text") is None
    assert [h.record.id for h in store.search("clip", gone, k=10)] == ["kept"]
    assert store.search("text", random_vectors(1, 8)[0]) == []
    assert [r.id for r in store.list(objects=["cat"])] == ["kept"]
    assert store.find_by_hash("hash-gone") == []
    assert store.count() == 1
    assert store.get("kept") is not None
    assert store.delete("gone") is False


def test_delete_many_removes_every_named_record_and_counts_only_those_there(
    store: VectorStore,
) -> None:
    vectors = random_vectors(4, 16, seed=8)
    for i, vector in enumerate(vectors):
        put(store, f"img-{i}", vector, ["cat"])

    assert store.delete_many(["img-0", "img-2", "img-2", "missing"]) == 2

    assert [r.id for r in store.list()] == ["img-1", "img-3"]
    assert {h.record.id for h in store.search("clip", vectors[0], k=10)} == {"img-1", "img-3"}
    assert store.delete_many([]) == 0 and store.count() == 2


def test_search_many_answers_each_query_as_search_does(store: VectorStore) -> None:
    vectors = random_vectors(20, 16, seed=9)
    for i, vector in enumerate(vectors):
        put(store, f"img-{i:02d}", vector)
    queries = random_vectors(3, 16, seed=10)

    answers = store.search_many("clip", queries, k=4, min_score=-0.2)

    assert len(answers) == 3
    for query, hits in zip(queries, answers, strict=True):
        alone = store.search("clip", query, k=4, min_score=-0.2)
        assert [h.record.id for h in hits] == [h.record.id for h in alone]
        assert [h.score for h in hits] == pytest.approx([h.score for h in alone], abs=1e-5)
    assert store.search_many("clip", np.zeros((0, 16), np.float32)) == []
    with pytest.raises(ValueError):
        store.search_many("clip", random_vectors(2, 8))
    with pytest.raises(ValueError):
        store.search_many("clip", queries[0])


def test_sqlite_delete_leaves_no_vector_or_caption_bytes_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    store = SqliteVecStore(path, SPACES)
    pattern = np.array([0.123456789 * (i + 1) for i in range(16)], dtype=np.float32)
    store.upsert("gone", {"clip": pattern}, metadata("gone", caption="caption-secret-5f3a9c"))
    put(store, "kept", random_vectors(1, 16, seed=8)[0])
    gone_bytes = store.get_vector("gone", "clip").tobytes()  # type: ignore[union-attr]
    kept_bytes = store.get_vector("kept", "clip").tobytes()  # type: ignore[union-attr]
    store.checkpoint()
    assert gone_bytes in path.read_bytes(), "the test must see the bytes before the delete"

    store.delete("gone")
    store.checkpoint()

    on_disk = path.read_bytes() + _wal_bytes(path)
    assert gone_bytes not in on_disk, "the deleted vector is still in the file"
    assert b"caption-secret-5f3a9c" not in on_disk, "the deleted caption is still in the file"
    assert kept_bytes in on_disk, "the other record's vector must stay"
    store.close()


def _wal_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def test_nearest_pairs_finds_near_duplicates_above_the_threshold_and_not_below(
    store: VectorStore,
) -> None:
    rng = np.random.default_rng(9)
    base = unit(rng.standard_normal(16).astype(np.float32))
    others = random_vectors(5, 16, seed=10)
    put(store, "original", base)
    put(store, "resaved", base + 0.02 * rng.standard_normal(16).astype(np.float32))
    put(store, "cropped", base + 0.35 * rng.standard_normal(16).astype(np.float32))
    for i, vector in enumerate(others):
        put(store, f"other-{i}", vector)
    names = ["original", "resaved", "cropped"] + [f"other-{i}" for i in range(5)]
    matrix = np.stack([store.get_vector(n, "clip") for n in names])  # type: ignore[misc]
    scores = matrix @ matrix.T

    strict = store.nearest_pairs("clip", threshold=0.99)
    loose = store.nearest_pairs("clip", threshold=float(scores[0, 2]) - 1e-4)

    assert [(p.first, p.second) for p in strict] == [("original", "resaved")]
    assert strict[0].score == pytest.approx(scores[0, 1], abs=1e-5)
    expected = {
        (names[i], names[j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if scores[i, j] >= scores[0, 2] - 1e-4
    }
    assert {(p.first, p.second) for p in loose} == expected
    assert {("original", "cropped"), ("original", "resaved")} <= expected
    assert [p.score for p in loose] == sorted((p.score for p in loose), reverse=True)
    assert len(store.nearest_pairs("clip", threshold=-1.0, limit=3)) == 3


def test_find_by_hash_returns_every_record_with_that_content(store: VectorStore) -> None:
    vectors = random_vectors(3, 16)
    store.upsert("a", {"clip": vectors[0]}, metadata("a", content_hash="same"))
    store.upsert("b", {"clip": vectors[1]}, metadata("b", content_hash="same"))
    store.upsert("c", {"clip": vectors[2]}, metadata("c", content_hash="other"))

    assert [r.id for r in store.find_by_hash("same")] == ["a", "b"]
    assert [r.id for r in store.find_by_hash("other")] == ["c"]
    assert store.find_by_hash("missing") == []


def test_concurrent_upserts_from_threads_keep_the_count_right(store: VectorStore) -> None:
    vectors = random_vectors(40, 16, seed=11)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(20):  # shared ids, written by every thread, and ids of its own
                put(store, f"shared-{i}", vectors[i])
                put(store, f"t{thread}-{i}", vectors[20 + i])
        except BaseException as exc:  # a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.count() == 20 + 6 * 20
    assert len(store.list(limit=1000)) == 140
    assert len(store.search("clip", vectors[0], k=1000)) == 140


def test_a_store_sees_what_another_connection_wrote(open_store: OpenStore) -> None:
    writer, reader = open_store(), open_store()
    vectors = random_vectors(2, 16, seed=12)
    put(writer, "a", vectors[0])
    assert [h.record.id for h in reader.search("clip", vectors[0], k=5)] == ["a"]

    put(writer, "b", vectors[1])
    writer.delete("a")

    assert [h.record.id for h in reader.search("clip", vectors[0], k=5)] == ["b"]
    assert [(p.first, p.second) for p in reader.nearest_pairs("clip", -1.0)] == []


def test_a_vector_of_the_wrong_size_is_a_value_error(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="16"):
        store.upsert("img", {"clip": np.ones(15, dtype=np.float32)}, metadata("img"))
    with pytest.raises(ValueError, match="8"):
        store.upsert("img", {"clip": np.ones(16), "text": np.ones(16)}, metadata("img"))
    with pytest.raises(ValueError, match="16"):
        store.search("clip", np.ones(8))
    with pytest.raises(ValueError, match="unknown"):
        store.upsert("img", {"faces": np.ones(16)}, metadata("img"))
    with pytest.raises(ValueError, match="unknown"):
        store.search("faces", np.ones(16))
    assert store.count() == 0, "a refused upsert stores nothing"


def test_nan_zero_vectors_and_bad_metadata_are_value_errors(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="NaN"):
        store.upsert("img", {"clip": np.full(16, np.nan)}, metadata("img"))
    with pytest.raises(ValueError, match="zero"):
        store.search("clip", np.zeros(16))
    with pytest.raises(ValueError, match="objects"):
        store.upsert("img", {"clip": np.ones(16)}, {"objects": "cat"})
    with pytest.raises(ValueError, match="JSON"):
        store.upsert("img", {"clip": np.ones(16)}, {"when": object()})
    assert store.count() == 0


def test_reopening_with_another_dimension_is_a_value_error(open_store: OpenStore) -> None:
    put(open_store(), "img", random_vectors(1, 16)[0])

    with pytest.raises(ValueError, match="dimension"):
        open_store({"clip": 32, "text": 8})
    widened = open_store({"clip": 16, "text": 8, "faces": 4})
    assert widened.spaces == {"clip": 16, "text": 8, "faces": 4}
    assert widened.get("img") is not None


def test_open_vector_store_opens_the_store_the_settings_name(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "sqlite":
        settings = Settings(data_dir=tmp_path, vector_store="sqlite")
    else:
        settings = Settings(
            vector_store="postgres", postgres_url=request.getfixturevalue("postgres_url")
        )
    store = open_vector_store(settings)
    try:
        expected = SqliteVecStore if kind == "sqlite" else PgVectorStore
        assert isinstance(store, expected)
        assert store.spaces == {"clip": 512, "text": 384}
    finally:
        store.close()
    if kind == "sqlite":
        assert settings.vector_database_path.exists()


def test_postgres_without_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="FACET_POSTGRES_URL"):
        open_vector_store(Settings(vector_store="postgres", postgres_url=SecretStr("")))


def test_sqlite_reads_vectors_from_its_chunks_exactly_as_vec0_returns_them(tmp_path: Path) -> None:
    db = apsw.Connection(str(tmp_path / "chunks.sqlite3"))
    db.enable_load_extension(True)
    db.load_extension(sqlite_vec.loadable_path())
    db.execute("CREATE VIRTUAL TABLE vec_x USING vec0(embedding float[4], chunk_size=8)")
    vectors = random_vectors(30, 4, seed=13)
    for i, vector in enumerate(vectors):  # four chunks, then holes in them
        db.execute(
            "INSERT INTO vec_x (rowid, embedding) VALUES (?, ?)", (i + 100, vector.tobytes())
        )
    for rowid in (100, 107, 108, 115, 129):
        db.execute("DELETE FROM vec_x WHERE rowid = ?", (rowid,))
    db.execute("INSERT INTO vec_x (rowid, embedding) VALUES (?, ?)", (500, vectors[0].tobytes()))
    through_vec0 = {
        int(rowid): np.frombuffer(blob, dtype=np.float32)
        for rowid, blob in db.execute("SELECT rowid, embedding FROM vec_x")
    }

    keys, matrix = _read_chunks(db, "x", 4)  # the fast path itself, not its fallback

    assert sorted(keys.tolist()) == sorted(through_vec0) and len(keys) == 26
    for key, row in zip(keys.tolist(), matrix, strict=True):
        np.testing.assert_array_equal(row, through_vec0[key])
