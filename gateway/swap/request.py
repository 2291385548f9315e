"""The FaceFusion API's ProcessRequest, field for field, and the options Facet adds in
FaceFusion's own names. It arrives as a JSON string in the multipart `request` field."""

from __future__ import annotations

import json
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import BadRequest

PROCESSORS: Final = ("face_swapper", "face_enhancer", "frame_enhancer")
# The providers FaceFusion's users name. Placement is the server's (Triton's model configs):
# any of these is accepted and the response says which ones Triton really used.
EXECUTION_PROVIDERS: Final = ("cpu", "cuda", "tensorrt", "openvino", "coreml", "directml", "rocm")
DEFAULT_REQUEST: Final = '{"processors":["face_swapper"]}'


class ProcessRequest(BaseModel):
    # A mistyped option is a 400 naming it, never silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    processors: list[str] = Field(
        default_factory=lambda: ["face_swapper"],
        min_length=1,
        description=f"applied in order; known: {', '.join(PROCESSORS)}",
    )
    execution_providers: list[str] = Field(
        default_factory=lambda: ["cpu"],
        description="accepted for compatibility; the response reports what Triton used",
    )
    execution_thread_count: int = Field(
        default=1, ge=1, le=32, description="accepted for compatibility; Triton's configs set it"
    )
    output_video_fps: float | None = Field(
        default=None, gt=0, le=240, description="null keeps every source frame and timestamp"
    )
    output_image_scale: int = Field(default=100, ge=10, le=400, description="percent")
    output_video_scale: int = Field(default=100, ge=10, le=400, description="percent")
    face_detector_model: str = Field(default="mtcnn", description="mtcnn or scrfd")
    face_detector_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # FaceFusion's own option names, for what its CLI offers beyond the API document.
    face_swapper_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="FaceFusion's source/target identity blend"
    )
    face_selector_mode: Literal["many", "one", "reference"] = "many"
    reference_face_distance: float = Field(
        default=0.3, ge=0.0, le=1.0, description="reference mode: (1 − cos)/2 below this"
    )
    reference_face_position: int = Field(
        default=0, ge=0, le=100, description="reference mode: which face, largest first"
    )
    reference_frame_number: int = Field(
        default=0, ge=0, description="reference mode, videos: the frame the face is taken from"
    )
    face_swapper_pixel_boost: Literal[128, 256, 512] = 128
    face_enhancer_blend: int = Field(default=80, ge=0, le=100, description="percent")
    frame_enhancer_blend: int = Field(default=80, ge=0, le=100, description="percent")
    run_async: bool = Field(
        default=False,
        alias="async",
        description="/process/video only: answer at once with a queued job for /status/{job_id}",
    )


def parse_request(text: str | None) -> ProcessRequest:
    """The `request` form field as a ProcessRequest; a 400 that names what is wrong."""
    try:
        raw = json.loads(
            text if text not in (None, "") else DEFAULT_REQUEST, parse_constant=_no_constants
        )
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the 'request' field is not valid JSON: {exc.msg}") from exc
    except RecursionError as exc:  # the C scanner recurses once per nested array or object
        raise BadRequest("the 'request' field is nested too deeply to be a ProcessRequest") from exc
    except ValueError as exc:  # Python refuses integers of over 4,300 digits
        raise BadRequest("the 'request' field holds a number with too many digits") from exc
    if not isinstance(raw, dict):
        raise BadRequest("the 'request' field must be a JSON object")
    try:
        request = ProcessRequest.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(f"invalid 'request': {describe_errors(exc)}") from exc
    check_names(request)
    return request


def _no_constants(name: str) -> float:
    """json.loads takes NaN, Infinity and -Infinity, which JSON (RFC 8259) does not have."""
    raise BadRequest(f"the 'request' field is not valid JSON: {name} is not a JSON number")


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(_shown(p) for p in error["loc"]) or "request"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _shown(part: str | int) -> str:
    """A field name as the client sent it, cut short: an unknown key may be megabytes long."""
    text = "".join(ch for ch in str(part) if ch.isprintable())
    return text if len(text) <= 40 else f"{text[:40]}…"


def check_names(request: ProcessRequest) -> None:
    unknown = [p for p in request.processors if p not in PROCESSORS]
    if unknown:
        raise BadRequest(
            f"unknown processor(s) {', '.join(repr(p[:40]) for p in unknown[:5])}; "
            f"accepted: {', '.join(PROCESSORS)}"
        )
    if len(set(request.processors)) != len(request.processors):
        raise BadRequest("each processor may be named once")
    providers = [p for p in request.execution_providers if p.lower() not in EXECUTION_PROVIDERS]
    if providers:
        raise BadRequest(
            f"unknown execution provider(s) {', '.join(repr(p[:40]) for p in providers[:5])}; "
            f"accepted: {', '.join(EXECUTION_PROVIDERS)}"
        )
