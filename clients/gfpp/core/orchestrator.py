"""The seed's planner: `plan(image, options)` → a deterministic `Plan` saying which backend to
restore with, with which parameters, and why.

It detects faces with the server's detector, measures blur and noise here (see
`probe/quality.py`), reads which backends the server has, and applies the rules of
`core/rules.py`. `plan.params` are `restore()` options as they are, so
`restorer.restore(image, {**pl.params, **pl.postproc})` restores as planned. NIQE and
BRISQUE are None: no model for them is shipped, and they are not approximated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from clients.errors import DeadlineExceededError, NotFoundError, ServerError, UnavailableError
from clients.gfpp.core.registry import availability
from clients.gfpp.core.rules import PlanInputs, decide
from clients.gfpp.io.images import ChannelOrder, ImageInput, ImageSource
from clients.gfpp.names import (
    BACKGROUND_UPSCALER,
    DEFAULT_DETECTOR,
    DEFAULT_MIN_SCORE,
    DETECTORS,
)
from clients.gfpp.probe.faces import face_stats, restorable_boxes
from clients.gfpp.probe.quality import probe_quality
from clients.gfpp.restorers.options import (
    detector_of,
    score_of,
    upscale_of,
    version_of,
    weight_of,
)
from clients.gfpp.session import Detection, FacetSession, ServedModel, SessionSource, open_session

# Probe failures that leave a plan possible (from the whole image); others are the caller's.
PROBE_FAILURES = (UnavailableError, NotFoundError, DeadlineExceededError, ServerError)


@dataclass
class Plan:
    backend: str
    params: dict[str, Any]
    postproc: dict[str, Any]
    reason: str
    confidence: float = 0.5
    quality: dict[str, float | None] = field(default_factory=dict)
    faces: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceProbe:
    detections: list[Detection]
    error: str | None = None


def plan(
    image: ImageSource, opts: Mapping[str, Any] | None = None, *, server: SessionSource = None
) -> Plan:
    """Plan the restoration of `image` (a path, or a BGR array; `channel_order: "rgb"` for RGB).

    Options read: backend (default gfpgan), weight, version, upscale, only_center_face,
    face_detector_model / detector, face_detector_score, background (default realesrgan, as
    the seed's), experimental (accepted; Facet serves no experimental backend).
    """
    options = dict(opts or {})
    order: ChannelOrder = "rgb" if str(options.get("channel_order", "bgr")) == "rgb" else "bgr"
    rgb = ImageInput.from_source(image, order).pixels().rgb
    detector = detector_of(options, DEFAULT_DETECTOR)
    min_score = score_of(options.get("face_detector_score", DEFAULT_MIN_SCORE))
    with open_session(server) as session:
        served = session.served_models()
        probe = probe_faces(session, served, rgb, detector, min_score)
        where = session.server.describe()
    return assemble(options, served, probe, rgb, detector, min_score, where)


def probe_faces(
    session: FacetSession,
    served: Mapping[str, ServedModel],
    rgb: npt.NDArray[np.uint8],
    detector: str,
    min_score: float,
) -> FaceProbe:
    model = served.get(DETECTORS[detector])
    if model is None or not model.installed:
        return FaceProbe([], f"the server has no {DETECTORS[detector]} installed")
    try:
        return FaceProbe(session.detect(rgb, detector=detector, min_score=min_score))
    except PROBE_FAILURES as exc:
        return FaceProbe([], f"face detection failed: {exc}")


def assemble(
    options: Mapping[str, Any],
    served: Mapping[str, ServedModel],
    probe: FaceProbe,
    rgb: npt.NDArray[np.uint8],
    detector: str,
    min_score: float,
    where: dict[str, str],
) -> Plan:
    restorable = restorable_boxes(probe.detections, min_score)
    quality = probe_quality(rgb, [d.box for d in restorable])
    faces = faces_block(probe, detector, min_score)
    inputs = plan_inputs(options, served, probe, quality, len(restorable), detector, min_score)
    decision = decide(inputs)
    detail = {**decision.detail, "server": where, "experimental": experimental_note(options)}
    if probe.error is not None:
        detail["face_probe_error"] = probe.error
    return Plan(
        backend=decision.backend,
        params=decision.params,
        postproc=decision.postproc,
        reason=decision.reason,
        confidence=decision.confidence,
        quality=quality,
        faces=faces,
        detail=detail,
    )


def faces_block(probe: FaceProbe, detector: str, min_score: float) -> dict[str, Any]:
    if probe.error is None:
        return face_stats(probe.detections, detector_model=DETECTORS[detector], min_score=min_score)
    return {
        "count": None,
        "face_count": None,
        "detector": DETECTORS[detector],
        "error": probe.error,
    }


def plan_inputs(
    options: Mapping[str, Any],
    served: Mapping[str, ServedModel],
    probe: FaceProbe,
    quality: Mapping[str, float | None],
    restorable: int,
    detector: str,
    min_score: float,
) -> PlanInputs:
    face_blur = quality["face_blur_laplacian_var"]
    image_blur = quality["blur_laplacian_var"]
    assert image_blur is not None and quality["noise_sigma"] is not None
    found = probe.error is None
    upscaler = served.get(BACKGROUND_UPSCALER)
    return PlanInputs(
        requested_backend=str(options.get("backend", "gfpgan")),
        weight=weight_of(options["weight"]) if "weight" in options else None,
        params=restore_params(options, detector, min_score),
        background=options.get("background", "realesrgan"),
        available=availability(served),
        background_served=bool(upscaler and upscaler.installed),
        face_count=len([d for d in probe.detections if d.score >= min_score]) if found else None,
        restorable=restorable if found else None,
        blur=face_blur if face_blur is not None else image_blur,
        blur_measured_on="faces" if face_blur is not None else "image",
        noise=quality["noise_sigma"],
    )


def restore_params(options: Mapping[str, Any], detector: str, min_score: float) -> dict[str, Any]:
    """The restore options a plan passes on: the caller's, or the server's defaults."""
    return {
        "version": version_of(options.get("version", "1.4")),
        "upscale": upscale_of(options.get("upscale", 2)),
        "only_center_face": bool(options.get("only_center_face", False)),
        "face_detector_model": detector,
        "face_detector_score": min_score,
    }


def experimental_note(options: Mapping[str, Any]) -> dict[str, Any]:
    asked = bool(options.get("experimental", False))
    return {"asked": asked, "note": "this server serves no experimental backend"}
