"""The face gallery: people, each with one or more enrolled faces, in the vector store.

A face is one record of its own collection (gallery.sqlite3, or the `facet_faces` table on
PostgreSQL), never beside the image library's records: its unit embedding in the recognizer's
space, and metadata holding the person's id and name, the consent record, the raw embedding's
norm (dlib's distance needs it) and when it expires. The store's tag column (`objects`, object
names for images) holds the person id, so a person's faces are one indexed look-up. No face
image or crop is kept: an enrolment is its embedding and its consent, nothing more.

Deleting a person deletes all their faces in one transaction (`delete_many`); on the embedded
store the WAL is then checkpointed, so with `secure_delete` no byte of a deleted vector stays in
the files. The audit trail records the event without any biometric data.

Blocking: call from a worker thread (the routes use asyncio.to_thread)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import Conflict, NotFound
from gateway.recognition.audit import AuditLog, Event
from gateway.recognition.consent import Consent
from gateway.recognition.recognizers import Embeddings, Recognizer
from gateway.vectors.sqlite_vec import SqliteVecStore
from gateway.vectors.store import Hits, VectorRecord, VectorStore

log = logging.getLogger(__name__)
OpenStore = Callable[[Mapping[str, int]], VectorStore]
PAGE = 1000
CANDIDATES = 5  # nearest faces by cosine, re-ranked by the model's own distance
MAX_FACES_PER_PERSON = 100


@dataclass(frozen=True)
class Match:
    face_id: str
    person_id: str
    name: str
    distance: float  # in the recognizer's own metric
    similarity: float  # cosine of the unit embeddings
    known: bool  # distance below the recognizer's threshold


@dataclass(frozen=True)
class Enrolment:
    face_id: str
    person_id: str
    name: str
    model: str
    enrolled_at: float
    expires_at: float
    consent: dict[str, Any]


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    faces: list[Enrolment]


class FaceGallery:
    def __init__(self, open_store: OpenStore, audit: AuditLog) -> None:
        self._open = open_store
        # Check-then-write sequences (a person's face cap, delete after look-up) hold this, so
        # a registration racing a deletion cannot leave a face of a deleted person behind. One
        # process; several gateways on PostgreSQL rely on its transactions alone. Readers hold
        # it too, so a reopen (`_with_space`) never closes a store a reader is inside.
        self._writing = threading.RLock()
        self._store = open_store({})  # the spaces it already has
        self.audit = audit

    @property
    def store(self) -> VectorStore:
        return self._store

    def spaces(self) -> list[str]:
        """The recognizers' spaces the gallery holds (one per recognizer ever enrolled with)."""
        return list(self._store.spaces)

    def close(self) -> None:
        with self._writing:  # a sweep or deletion in a worker thread finishes first
            self._store.close()
            self.audit.close()

    # -- writing -----------------------------------------------------------------------------

    def enrol(
        self,
        recognizer: Recognizer,
        dim: int,
        embedding: Embeddings,
        name: str,
        consent: Consent,
        person_id: str | None = None,
    ) -> Enrolment:
        """One face (row 0 of `embedding`) for a new person, or another face of `person_id`."""
        with self._writing:
            return self._enrol(recognizer, dim, embedding, name, consent, person_id)

    def _enrol(
        self,
        recognizer: Recognizer,
        dim: int,
        embedding: Embeddings,
        name: str,
        consent: Consent,
        person_id: str | None,
    ) -> Enrolment:
        store = self._with_space(recognizer.space, dim)
        if person_id is not None:
            name = self._existing_name(person_id)
        person_id = person_id or f"person_{uuid.uuid4().hex[:16]}"
        face_id = f"face_{uuid.uuid4().hex[:16]}"
        now = time.time()
        metadata = {
            "objects": [person_id],
            "person_id": person_id,
            "name": name,
            "model": recognizer.space,
            "norm": float(embedding.norms[0]),
            "consent": consent.as_metadata(),
            "enrolled_at": now,
            "expires_at": consent.expires_at,
        }
        record = store.upsert(face_id, {recognizer.space: embedding.unit[0]}, metadata)
        self._audit("enrolled", person_id, 1, f"consent {consent.text_version}")
        return enrolment(record)

    def delete_person(self, person_id: str, reason: str = "requested") -> int:
        with self._writing:
            faces = self._every_face_of(person_id)
            removed = self._remove([face.id for face in faces]) if faces else 0
            if not removed:
                raise NotFound(f"no person '{person_id}' in the gallery")
            self._audit("person_deleted", person_id, removed, reason)
            return removed

    def delete_face(self, person_id: str, face_id: str) -> None:
        with self._writing:
            record = self._store.get(face_id)
            owned = record is not None and record.metadata.get("person_id") == person_id
            if not owned or not self._remove([face_id]):
                raise NotFound(f"no face '{face_id}' of person '{person_id}'")
            self._audit("face_deleted", person_id, 1, "requested")

    def sweep(self, now: float | None = None) -> int:
        """Delete every enrolment whose consent has expired; how many faces went."""
        with self._writing:
            return self._sweep(time.time() if now is None else now)

    def _sweep(self, moment: float) -> int:
        expired: dict[str, list[str]] = {}
        for record in self._all():
            if float(record.metadata.get("expires_at", 0.0)) <= moment:
                expired.setdefault(str(record.metadata.get("person_id")), []).append(record.id)
        for person_id, faces in expired.items():
            self._remove(faces)
            self._audit("expired", person_id, len(faces), "retention period ended")
        return sum(map(len, expired.values()))

    # -- reading -----------------------------------------------------------------------------

    def match(self, recognizer: Recognizer, embeddings: Embeddings) -> list[Match | None]:
        """Each face's nearest enrolled face in the model's own metric (None: the gallery has
        none), `known` when it is below the threshold; one store query for all the faces."""
        with self._writing:
            if recognizer.space not in self._store.spaces or not len(embeddings.unit):
                return [None] * len(embeddings.unit)
            answers = self._store.search_many(recognizer.space, embeddings.unit, k=CANDIDATES)
        return [
            best_match(recognizer, hits, float(norm))
            for hits, norm in zip(answers, embeddings.norms, strict=True)
        ]

    def people(self) -> list[Person]:
        grouped: dict[str, list[Enrolment]] = {}
        with self._writing:
            records = self._all()
        for record in records:
            face = enrolment(record)
            grouped.setdefault(face.person_id, []).append(face)
        return [Person(pid, faces[0].name, faces) for pid, faces in grouped.items()]

    def person(self, person_id: str) -> Person:
        with self._writing:
            records = self._every_face_of(person_id)
        faces = [enrolment(record) for record in records]
        if not faces:
            raise NotFound(f"no person '{person_id}' in the gallery")
        return Person(person_id, faces[0].name, faces)

    # -- internals ---------------------------------------------------------------------------

    def _with_space(self, space: str, dim: int) -> VectorStore:
        """The store, reopened with `space` added the first time a recognizer enrols: the new
        connection is opened before the old one closes, so a failure leaves the old in use."""
        with self._writing:
            if space not in self._store.spaces:
                old = self._store
                self._store = self._open({**old.spaces, space: dim})
                old.close()
            return self._store

    def _existing_name(self, person_id: str) -> str:
        faces = self._faces_of(person_id)
        if not faces:
            raise NotFound(f"no person '{person_id}' in the gallery")
        if len(faces) >= MAX_FACES_PER_PERSON:
            raise Conflict(f"person '{person_id}' has {len(faces)} faces, the most one may have")
        return str(faces[0].metadata.get("name", ""))

    def _faces_of(self, person_id: str) -> list[VectorRecord]:
        return self._store.list(limit=MAX_FACES_PER_PERSON, objects=[person_id])

    def _every_face_of(self, person_id: str) -> list[VectorRecord]:
        """All of them, however many: a deletion must never leave one behind."""
        return self._all(objects=[person_id])

    def _all(self, objects: list[str] | None = None) -> list[VectorRecord]:
        found: list[VectorRecord] = []
        while page := self._store.list(limit=PAGE, offset=len(found), objects=objects):
            found.extend(page)
        return found

    def _remove(self, face_ids: list[str]) -> int:
        removed = self._store.delete_many(face_ids)
        # The WAL must not keep the deleted vectors' pages. PostgreSQL keeps a deleted row's
        # bytes in dead tuples until (auto)vacuum; the README says so.
        if isinstance(self._store, SqliteVecStore) and not self._store.checkpoint():
            log.warning("the gallery's WAL could not be emptied now (a reader holds it)")
        return removed

    def _audit(self, event: Event, person_id: str, faces: int, reason: str) -> None:
        """The data change is committed already: a failed audit row is logged (ids only),
        never turned into a failed answer that a client would retry."""
        try:
            self.audit.record(event, person_id, faces, reason)
        except Exception:
            log.exception("audit row %s for %s could not be written", event, person_id)


def best_match(recognizer: Recognizer, hits: Hits, norm: float) -> Match | None:
    """The candidate nearest in the model's own metric."""
    best: Match | None = None
    for found in hits:
        record = found.record
        other = float(record.metadata.get("norm", 1.0))
        distance = recognizer.distance(found.score, norm, other)
        if best is None or distance < best.distance:
            best = Match(
                record.id,
                str(record.metadata.get("person_id")),
                str(record.metadata.get("name", "")),
                distance,
                found.score,
                distance < recognizer.threshold,
            )
    return best


def enrolment(record: VectorRecord) -> Enrolment:
    data = record.metadata
    return Enrolment(
        face_id=record.id,
        person_id=str(data.get("person_id")),
        name=str(data.get("name", "")),
        model=str(data.get("model", "")),
        enrolled_at=float(data.get("enrolled_at", record.created_at)),
        expires_at=float(data.get("expires_at", 0.0)),
        consent=dict(data.get("consent") or {}),
    )
