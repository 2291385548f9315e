"""The AI Multimedia Platform's image recognition API (`/api/image-recognition/…`): CLIP
zero-shot classification and COCO-80 objects from the served NanoDet. Boxes are
[x1, y1, x2, y2] in image pixels."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from pydantic import BaseModel, Field

from gateway.context.objects_session import Detection
from gateway.errors import BadRequest
from gateway.openapi import errors
from gateway.recognition.labels import DEFAULT_LABELS, MAX_LABEL_CHARS, MAX_LABELS
from gateway.recognition.service import CLASSIFIER
from gateway.routes.deps import rate_limited, services_of
from gateway.routes.recognition_faces import IMAGE, box_of, read_image, service_of
from gateway.weights import synthetic_warning

router = APIRouter(
    prefix="/api/image-recognition", tags=["image recognition (AI Multimedia Platform API)"]
)
DEFAULT_TOP_K = 5
SHOWN_CHARS = 64  # of a caller's value quoted back in a refusal


class Classification(BaseModel):
    label: str
    confidence: float = Field(description="CLIP's softmax probability over the labels")


class ClassifyResponse(BaseModel):
    classifications: list[Classification]
    model: str
    warning: str | None = None


class ObjectDetection(BaseModel):
    label: str = Field(description="a COCO-80 class name")
    confidence: float
    bbox: list[int] = Field(description="[x1, y1, x2, y2] in pixels")


class DetectResponse(BaseModel):
    detections: list[ObjectDetection]
    model: str
    warning: str | None = None


def object_detection(found: Detection) -> ObjectDetection:
    """One detection as the platform answers it (the REST route and the camera)."""
    return ObjectDetection(
        label=found.label, confidence=round(found.confidence, 4), bbox=box_of(found.box)
    )


def parse_labels(raw: str | None) -> list[str] | None:
    """`labels`: a JSON list of strings or comma-separated text; None: the default set."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:  # a JSON object is JSON too, refused below rather than cut at its commas
        value = json.loads(text) if text.startswith(("[", "{")) else text.split(",")
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"labels must be a JSON list of strings or comma-separated: {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number of over 4300 digits; deep nesting
        raise BadRequest(
            "labels must be a JSON list of strings or comma-separated: it nests too deep or "
            "holds a number too long to read"
        ) from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("labels must be a JSON list of strings or comma-separated text")
    labels = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if not 2 <= len(labels) <= MAX_LABELS:
        raise BadRequest(f"give between 2 and {MAX_LABELS} distinct labels")
    if any(len(label) > MAX_LABEL_CHARS or not label.isprintable() for label in labels):
        raise BadRequest(f"each label must be printable and at most {MAX_LABEL_CHARS} characters")
    return labels


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def classify_image(
    request: Request,
    image: Annotated[UploadFile, IMAGE],
    model: Annotated[str | None, Form(description=f"model id: {CLASSIFIER} (the default)")] = None,
    labels: Annotated[
        str | None,
        Form(
            description="labels to choose among, JSON list or comma-separated; default: "
            f"{len(DEFAULT_LABELS)} everyday subjects (GET /api/image-recognition/labels)"
        ),
    ] = None,
    top_k: Annotated[int, Form(ge=1, le=MAX_LABELS)] = DEFAULT_TOP_K,
) -> ClassifyResponse:
    """CLIP ViT-B/32 zero-shot: the prompt "a photo of a {label}." for each label."""
    if model not in (None, "", CLASSIFIER):
        shown = model if len(model) <= SHOWN_CHARS else f"{model[:SHOWN_CHARS]}…"
        raise BadRequest(f"model {shown!r} is not served; available: {CLASSIFIER}")
    chosen = parse_labels(labels)
    service = service_of(request)
    rgb = await read_image(request, image)
    ranked = await service.classify(rgb, chosen, top_k)
    return ClassifyResponse(
        classifications=[
            Classification(label=label, confidence=round(p, 6)) for label, p in ranked
        ],
        model=CLASSIFIER,
        warning=synthetic_warning(service.synthetic_models(service.classifier_models)),
    )


@router.get("/labels")
async def default_labels() -> dict[str, list[str]]:
    """The labels classify chooses among when the caller names none."""
    return {"labels": list(DEFAULT_LABELS)}


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(rate_limited("other"))],
    responses=errors(400, 413, 415, 429, 502, 503, 504),
)
async def detect_objects(
    request: Request,
    image: Annotated[UploadFile, IMAGE],
    min_confidence: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> DetectResponse:
    """COCO-80 objects (NanoDet, decoded with NMS inside Triton)."""
    service = service_of(request)
    threshold = (
        services_of(request).settings.context_object_score
        if min_confidence is None
        else min_confidence
    )
    rgb = await read_image(request, image)
    found = await service.detect_objects(rgb, threshold)
    return DetectResponse(
        detections=[object_detection(d) for d in found],
        model=service.object_model,
        warning=synthetic_warning(service.synthetic_models([service.object_model])),
    )
