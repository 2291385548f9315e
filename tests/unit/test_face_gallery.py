"""The face gallery over both real stores (sqlite-vec through apsw, PostgreSQL + pgvector) and
its audit trail: enrolment, matching in the recognizer's own metric, real deletion, expiry. The
scan of the database files for deleted bytes is the embedded store's; on PostgreSQL deletion
is the row gone, checked by every backend's case."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import psycopg
import pytest

from gateway.errors import NotFound
from gateway.recognition.audit import AuditLog
from gateway.recognition.consent import Consent
from gateway.recognition.gallery import FaceGallery
from gateway.recognition.recognizers import ARCFACE, DLIB, Embeddings, to_embeddings
from gateway.vectors.pgvector import PgVectorStore
from gateway.vectors.sqlite_vec import SqliteVecStore
from gateway.vectors.store import VectorStore

DIM = 128
NOW = 1_800_000_000.0


def raw_descriptor(seed: int, scale: float = 1.4) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector) * scale


def near(descriptor: np.ndarray, distance: float, seed: int) -> np.ndarray:
    """Another raw descriptor `distance` away in Euclidean terms."""
    step = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return descriptor + step / np.linalg.norm(step) * distance


def embedded(*raws: np.ndarray) -> Embeddings:
    return to_embeddings(np.stack(raws).astype(np.float32), len(raws), "test")


def consent(expires_at: float = NOW + 86_400) -> Consent:
    return Consent("face_recognition", "2026-12-01", NOW, expires_at)


@pytest.fixture(params=["sqlite", "pgvector"])
def gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaceGallery]:
    """A gallery on the embedded store, or on its own PostgreSQL table."""
    url = request.getfixturevalue("postgres_url") if request.param == "pgvector" else ""
    table = f"facet_faces_{uuid.uuid4().hex[:12]}"

    def open_store(spaces: Mapping[str, int]) -> VectorStore:
        if url:
            return PgVectorStore(url, spaces, table=table)
        return SqliteVecStore(tmp_path / "gallery.sqlite3", spaces)

    opened = FaceGallery(open_store, AuditLog(tmp_path / "audit.sqlite3"))
    yield opened
    opened.close()
    if url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def sqlite_gallery(tmp_path: Path) -> Iterator[FaceGallery]:
    def open_store(spaces: Mapping[str, int]) -> VectorStore:
        return SqliteVecStore(tmp_path / "gallery.sqlite3", spaces)

    opened = FaceGallery(open_store, AuditLog(tmp_path / "audit.sqlite3"))
    yield opened
    opened.close()


def test_a_face_within_dlibs_distance_is_the_enrolled_person_and_one_beyond_is_not(gallery):
    enrolled_raw = raw_descriptor(1)
    face = gallery.enrol(DLIB, DIM, embedded(enrolled_raw), "Ada", consent())

    same, other = near(enrolled_raw, 0.45, 2), near(enrolled_raw, 0.75, 3)
    matches = gallery.match(DLIB, embedded(same, other))

    assert matches[0] is not None and matches[0].known and matches[0].person_id == face.person_id
    assert matches[0].distance == pytest.approx(0.45, abs=1e-3), "dlib's raw distance, exact"
    assert matches[1] is not None and not matches[1].known
    assert matches[1].distance == pytest.approx(0.75, abs=1e-3)


def test_an_empty_gallery_or_another_models_space_matches_nobody(gallery):
    assert gallery.match(DLIB, embedded(raw_descriptor(1))) == [None]
    gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada", consent())
    assert gallery.match(ARCFACE, to_embeddings(np.ones((1, 512), np.float32), 1, "x")) == [None]


def test_deleting_a_person_removes_every_face_and_its_bytes_from_the_files(
    sqlite_gallery, tmp_path
):
    gallery = sqlite_gallery
    first = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada Lovelace", consent())
    gallery.enrol(DLIB, DIM, embedded(raw_descriptor(2)), "x", consent(), first.person_id)
    kept = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(3)), "Grace", consent())
    vectors = [
        gallery.store.get_vector(f.face_id, DLIB.space)
        for f in gallery.person(first.person_id).faces
    ]

    assert gallery.delete_person(first.person_id) == 2

    assert [p.person_id for p in gallery.people()] == [kept.person_id]
    files = b"".join(p.read_bytes() for p in tmp_path.glob("gallery.sqlite3*"))
    for vector in vectors:  # every 16-byte window: a vector may straddle two pages
        assert vector is not None
        raw = vector.tobytes()
        assert not any(raw[i : i + 16] in files for i in range(0, len(raw), 16))
    assert b"Ada Lovelace" not in files
    with pytest.raises(NotFound):
        gallery.delete_person(first.person_id)


def test_the_audit_trail_records_events_without_names_or_embeddings(sqlite_gallery, tmp_path):
    gallery = sqlite_gallery
    face = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada Lovelace", consent())
    vector = gallery.store.get_vector(face.face_id, DLIB.space)
    gallery.delete_face(face.person_id, face.face_id)

    events = [(e.event, e.person_id, e.faces) for e in gallery.audit.entries()]
    assert events == [("enrolled", face.person_id, 1), ("face_deleted", face.person_id, 1)]
    audit_bytes = (tmp_path / "audit.sqlite3").read_bytes()
    assert b"Ada" not in audit_bytes and vector is not None
    assert vector.tobytes()[:16] not in audit_bytes
    with sqlite3.connect(tmp_path / "audit.sqlite3") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(audit)")]
    assert columns == ["seq", "at", "event", "person_id", "faces", "reason"]


def test_the_sweep_deletes_expired_enrolments_only(gallery):
    old = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Old", consent(NOW + 10))
    new = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(2)), "New", consent(NOW + 1000))

    assert gallery.sweep(now=NOW + 100) == 1

    assert [p.person_id for p in gallery.people()] == [new.person_id]
    assert gallery.audit.entries(old.person_id)[-1].event == "expired"
    assert gallery.sweep(now=NOW + 100) == 0


def test_a_face_of_another_person_cannot_be_deleted_through_the_wrong_person(gallery):
    ada = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada", consent())
    grace = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(2)), "Grace", consent())
    with pytest.raises(NotFound):
        gallery.delete_face(grace.person_id, ada.face_id)
    assert len(gallery.people()) == 2


def test_a_reopened_gallery_keeps_its_spaces_and_people(tmp_path):
    def open_store(spaces: Mapping[str, int]) -> VectorStore:
        return SqliteVecStore(tmp_path / "gallery.sqlite3", spaces)

    first = FaceGallery(open_store, AuditLog(tmp_path / "audit.sqlite3"))
    face = first.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada", consent())
    first.close()
    second = FaceGallery(open_store, AuditLog(tmp_path / "audit.sqlite3"))
    try:
        assert second.store.spaces == {DLIB.space: DIM}
        match = second.match(DLIB, embedded(raw_descriptor(1)))[0]
        assert match is not None and match.face_id == face.face_id and match.known
    finally:
        second.close()


def test_dlibs_distance_from_cosine_and_norms_equals_the_raw_euclidean_distance():
    a, b = raw_descriptor(5, 1.3), raw_descriptor(6, 1.55)
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    expected = float(np.linalg.norm(a - b))
    got = DLIB.distance(cosine, float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert ARCFACE.distance(cosine, 9.0, 3.0) == pytest.approx(1 - cosine)


def test_deleting_a_person_reaches_every_face_however_many_there_are(gallery):
    first = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada", consent())
    for i in range(150):  # past the enrolment cap, as stores written by other versions may be
        gallery.store.upsert(
            f"face_extra_{i}",
            {DLIB.space: raw_descriptor(100 + i)},
            {"objects": [first.person_id], "person_id": first.person_id, "name": "Ada"},
        )

    assert len(gallery.person(first.person_id).faces) == 151
    assert gallery.delete_person(first.person_id) == 151
    assert gallery.store.count() == 0


def test_concurrent_deletes_of_one_person_remove_it_once(gallery):
    from concurrent.futures import ThreadPoolExecutor

    face = gallery.enrol(DLIB, DIM, embedded(raw_descriptor(1)), "Ada", consent())

    def delete() -> int:
        try:
            return gallery.delete_person(face.person_id)
        except NotFound:
            return 0

    with ThreadPoolExecutor(4) as pool:
        removed = list(pool.map(lambda _: delete(), range(4)))
    assert sorted(removed) == [0, 0, 0, 1]
    assert [e.event for e in gallery.audit.entries()] == ["enrolled", "person_deleted"]
