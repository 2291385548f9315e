"""The AI Multimedia Platform's face recognition API (`/api/face-recognition/…`), field for
field, and the gallery routes it lacks: people listed and deleted, the consent policy.

Boxes are [x1, y1, x2, y2] in image pixels; landmarks are named as the platform names them.
The gallery's routes need the bearer token when FACET_API_TOKEN is set."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field

from gateway.auth import require_token
from gateway.errors import BadRequest, NotFound
from gateway.faces.types import LANDMARK_NAMES, Face
from gateway.imageio import decode_upload
from gateway.openapi import errors
from gateway.recognition.consent import EXAMPLE, parse_consent
from gateway.recognition.gallery import Enrolment, Person
from gateway.recognition.service import Recognised, RecognitionService
from gateway.routes.deps import rate_limited, services_of
from gateway.routes.upscale import read_limited
from gateway.weights import synthetic_warning

PREFIX = "/api/face-recognition"
router = APIRouter(prefix=PREFIX, tags=["face recognition (AI Multimedia Platform API)"])
# Rate limit first: wrong tokens count against the caller like any request (no free guessing).
protected = [Depends(rate_limited("other")), Depends(require_token)]
MAX_NAME = 200
MAX_ID = 64  # the gallery's ids are person_/face_ and 16 hex digits
IMAGE = File(description="JPEG, PNG or WebP, at most 15 MB")


class DetectedFace(BaseModel):
    face_id: str = Field(description="this answer's numbering: face_001, face_002, … left to right")
    confidence: float = Field(description="the detector's score")
    bbox: list[int] = Field(description="[x1, y1, x2, y2] in pixels")
    landmarks: dict[str, list[int]] = Field(
        description=f"[x, y] of {', '.join(LANDMARK_NAMES)} (left = the image's left)"
    )


class DetectResponse(BaseModel):
    faces: list[DetectedFace]
    model: str
    warning: str | None = None


class RegisterResponse(BaseModel):
    success: bool
    face_id: str
    person_id: str = Field(description="send it as person_id to add another face of them")
    name: str
    model: str = Field(description="the recognizer whose gallery space holds the face")
    expires_at: float = Field(description="epoch seconds: the enrolment is deleted then")
    warning: str | None = None


class RecognisedFace(BaseModel):
    face_id: str | None = Field(description="the matched enrolled face; null when unknown")
    person_id: str | None
    name: str | None = Field(description="the matched person's name; null when unknown")
    known: bool = Field(description="whether the distance is below the model's threshold")
    confidence: float = Field(
        description="cosine similarity to the nearest enrolled face (0 when none is enrolled)"
    )
    distance: float | None = Field(description="the model's own distance to that face")
    threshold: float
    metric: str = Field(description="euclidean (dlib, raw descriptors) or cosine (ArcFace)")
    detection_confidence: float
    bbox: list[int]


class RecognizeResponse(BaseModel):
    faces: list[RecognisedFace]
    model: str
    warning: str | None = None


class FaceInfo(BaseModel):
    face_id: str
    model: str
    enrolled_at: float
    expires_at: float
    consent: dict[str, str | float]


class PersonInfo(BaseModel):
    person_id: str
    name: str
    faces: list[FaceInfo]


class PeopleResponse(BaseModel):
    people: list[PersonInfo]
    total: int


class DeletedResponse(BaseModel):
    success: bool
    person_id: str
    faces_deleted: int


class PolicyResponse(BaseModel):
    retention_days: int = Field(description="enrolments are deleted this long after consent")
    consent_purposes: list[str]
    consent_text_versions: list[str]
    consent_example: str
    recognizer: str
    model: str
    metric: str
    threshold: float
    threshold_source: str
    token_required: bool


def service_of(request: Request) -> RecognitionService:
    return services_of(request).recognition


async def read_image(request: Request, image: UploadFile) -> npt.NDArray[np.uint8]:
    settings = services_of(request).settings
    data = await read_limited(image, settings.max_upload_bytes)
    return (await asyncio.to_thread(decode_upload, data, settings)).rgb


def box_of(box: Sequence[float]) -> list[int]:
    """[x1, y1, x2, y2] in whole pixels, as the platform's answers show boxes."""
    return [round(v) for v in box]


def detected(face: Face, place: int) -> DetectedFace:
    points = {
        name: [round(float(x)), round(float(y))]
        for name, (x, y) in zip(LANDMARK_NAMES, face.landmarks, strict=True)
    }
    return DetectedFace(
        face_id=f"face_{place:03d}",
        confidence=round(face.score, 4),
        bbox=box_of(face.box),
        landmarks=points,
    )


def recognised(item: Recognised) -> RecognisedFace:
    recognizer = item.recognizer
    match = item.match
    known = match is not None and match.known
    return RecognisedFace(
        face_id=match.face_id if known and match else None,
        person_id=match.person_id if known and match else None,
        name=match.name if known and match else None,
        known=known,
        confidence=round(match.similarity, 4) if match else 0.0,
        distance=round(match.distance, 4) if match else None,
        threshold=recognizer.threshold,
        metric=recognizer.metric,
        detection_confidence=round(item.face.score, 4),
        bbox=box_of(item.face.box),
    )


def face_info(face: Enrolment) -> FaceInfo:
    return FaceInfo(
        face_id=face.face_id,
        model=face.model,
        enrolled_at=face.enrolled_at,
        expires_at=face.expires_at,
        consent=face.consent,
    )


def person_info(person: Person) -> PersonInfo:
    return PersonInfo(
        person_id=person.person_id, name=person.name, faces=[face_info(f) for f in person.faces]
    )


def checked_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise BadRequest(f"name must be printable text of 1 to {MAX_NAME} characters")
    return cleaned


def checked_id(value: str, kind: str) -> str:
    """A person or face id as a caller sends it. Every id the gallery hands out is short and
    printable, so a longer one names nobody: a 404 that does not quote it back."""
    if len(value) > MAX_ID or not value.isprintable():
        raise NotFound(
            f"no {kind} with that id: the gallery's ids are at most {MAX_ID} printable characters"
        )
    return value


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def detect_faces(request: Request, image: Annotated[UploadFile, IMAGE]) -> DetectResponse:
    """Faces with their boxes and five landmarks."""
    service = service_of(request)
    rgb = await read_image(request, image)
    faces = await service.detect_faces(rgb)
    return DetectResponse(
        faces=[detected(face, place) for place, face in enumerate(faces, start=1)],
        model=service.detector_model,
        warning=synthetic_warning(service.synthetic_models([service.detector_model])),
    )


@router.post(
    "/register",
    response_model=RegisterResponse,
    response_model_exclude_none=True,
    dependencies=protected,
    responses=errors(400, 401, 404, 409, 413, 415, 429, 502, 503, 504),
)
async def register_face(
    request: Request,
    image: Annotated[UploadFile, IMAGE],
    name: Annotated[str, Form(description="the person's name")],
    consent: Annotated[
        str | None,
        Form(description=f"required: the person's consent as JSON, e.g. {EXAMPLE}"),
    ] = None,
    person_id: Annotated[
        str | None, Form(description="add this face to an enrolled person instead")
    ] = None,
) -> RegisterResponse:
    """Enrol the photo's face (the only one, or clearly the largest) after checking consent.
    No face image is stored: only its embedding, with the consent record."""
    service = service_of(request)
    settings = services_of(request).settings
    agreed = parse_consent(consent, settings)
    person = checked_name(name)
    if person_id:  # an unknown person is refused before any model runs (enrol checks again)
        await asyncio.to_thread(service.gallery.person, checked_id(person_id, "person"))
    rgb = await read_image(request, image)
    _, enrolled, recognizer = await service.register(rgb, person, agreed, person_id or None)
    used = [service.detector_model, recognizer.model]
    return RegisterResponse(
        success=True,
        face_id=enrolled.face_id,
        person_id=enrolled.person_id,
        name=enrolled.name,
        model=enrolled.model,
        expires_at=enrolled.expires_at,
        warning=synthetic_warning(service.synthetic_models(used)),
    )


@router.post(
    "/recognize",
    response_model=RecognizeResponse,  # nulls kept: an unknown face says name null
    dependencies=protected,
    responses=errors(400, 401, 413, 415, 429, 502, 503, 504),
)
async def recognise_faces(
    request: Request, image: Annotated[UploadFile, IMAGE]
) -> RecognizeResponse:
    """Every face of the photo against the gallery: a name when one is near enough."""
    service = service_of(request)
    rgb = await read_image(request, image)
    found = await service.recognise(rgb)
    recognizer = found[0].recognizer if found else service.recognizer()
    used = [service.detector_model, recognizer.model]
    return RecognizeResponse(
        faces=[recognised(item) for item in found],
        model=recognizer.space,
        warning=synthetic_warning(service.synthetic_models(used)),
    )


@router.get(
    "/people",
    response_model=PeopleResponse,
    dependencies=protected,
    responses=errors(400, 401, 429, 503),
)
async def list_people(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="people per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="people to skip, in enrolment order")] = 0,
) -> PeopleResponse:
    """Everyone enrolled (`total`), a page of them with their faces and consent records."""
    people = await asyncio.to_thread(service_of(request).gallery.people)
    page = people[offset : offset + limit]
    return PeopleResponse(people=[person_info(p) for p in page], total=len(people))


@router.get(
    "/people/{person_id}",
    response_model=PersonInfo,
    dependencies=protected,
    responses=errors(401, 404, 429, 503),
)
async def get_person(person_id: str, request: Request) -> PersonInfo:
    gallery = service_of(request).gallery
    person = await asyncio.to_thread(gallery.person, checked_id(person_id, "person"))
    return person_info(person)


@router.delete(
    "/people/{person_id}",
    response_model=DeletedResponse,
    dependencies=protected,
    responses=errors(401, 404, 429, 503),
)
async def delete_person(person_id: str, request: Request) -> DeletedResponse:
    """Every face of the person, their embeddings and consent records, in one transaction;
    the audit trail keeps that it happened, without any biometric data."""
    gallery = service_of(request).gallery
    removed = await asyncio.to_thread(gallery.delete_person, checked_id(person_id, "person"))
    return DeletedResponse(success=True, person_id=person_id, faces_deleted=removed)


@router.delete(
    "/people/{person_id}/faces/{face_id}",
    response_model=DeletedResponse,
    dependencies=protected,
    responses=errors(401, 404, 429, 503),
)
async def delete_face(person_id: str, face_id: str, request: Request) -> DeletedResponse:
    gallery = service_of(request).gallery
    person, face = checked_id(person_id, "person"), checked_id(face_id, "face")
    await asyncio.to_thread(gallery.delete_face, person, face)
    return DeletedResponse(success=True, person_id=person_id, faces_deleted=1)


@router.get("/policy", response_model=PolicyResponse)
async def policy(request: Request) -> PolicyResponse:
    """What a registration must carry, how long enrolments are kept, how matching decides."""
    settings = services_of(request).settings
    recognizer = service_of(request).recognizer()
    return PolicyResponse(
        retention_days=settings.gallery_retention_days,
        consent_purposes=list(settings.consent_purposes),
        consent_text_versions=list(settings.consent_text_versions),
        consent_example=EXAMPLE,
        recognizer=recognizer.name,
        model=recognizer.model,
        metric=recognizer.metric,
        threshold=recognizer.threshold,
        threshold_source=recognizer.threshold_source,
        token_required=bool(settings.api_token.get_secret_value()),
    )
