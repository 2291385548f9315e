"""The planner's choice rules: pure functions from what was measured to a backend, parameters
and a reason, so they are tested without a server.

Degradation is read from two measures (see `probe/quality.py`): blur, the Laplacian variance
of the faces at 128² (of the whole image when no face was found), and noise σ in 8-bit levels.
The thresholds were set on the astronaut photo (scikit-image's, a real portrait): sharp, its
face measures 453 and σ 1.7; Gaussian blur σ=1 gives 45, σ=2 gives 10; shrinking it 2× and
enlarging it back gives 101, 4× gives 20; added Gaussian noise of σ 5/10/20 reads 5.2/9.4/17.8.

| reason | when | weight (unless the caller gives one) |
|---|---|---|
| few_artifacts | blur ≥ 150 and noise < 5 | 0.5, the seed's and GFPGAN's default |
| heavy_degradation | blur < 20 or noise ≥ 15 | 0.8: little of the original face is worth keeping |
| moderate_degradation | otherwise | 0.6, the seed's value for this case |
| no_faces / faces_too_small | no face / none with eyes ≥ 5 px apart | as above; no face changes |
| no_restorer_served | the server has no GFPGAN | as above; a restoration would fail |

Confidence is 0.5 + 0.45·tanh(m), m being how far (in octaves) the measures sit from the
nearest threshold that would change the decision; found faces add 0.05, none found take 0.05
off, a failed face probe 0.2, an unserved requested backend 0.1; kept within [0.05, 0.95].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clients.gfpp.names import BACKEND_ALIASES, BACKGROUND_UPSCALER

BLUR_SHARP: Final = 150.0
BLUR_HEAVY: Final = 20.0
NOISE_LOW: Final = 5.0
NOISE_HEAVY: Final = 15.0
# The estimators' resolution: below these a value is as good as zero (and log2 stays finite).
BLUR_FLOOR: Final = 0.01
NOISE_FLOOR: Final = 0.25
LEVEL_WEIGHTS: Final = {"few_artifacts": 0.5, "moderate_degradation": 0.6, "heavy_degradation": 0.8}
RESTORER: Final = "gfpgan"  # the one restorer a Facet server serves

ROUTING_RULES: Final = {
    "few_artifacts": f"blur >= {BLUR_SHARP:g} and noise_sigma < {NOISE_LOW:g}",
    "heavy_degradation": f"blur < {BLUR_HEAVY:g} or noise_sigma >= {NOISE_HEAVY:g}",
    "moderate_degradation": "otherwise",
    "no_faces": "the detector found no face (GFPGAN restores faces only)",
    "faces_too_small": "no face has its eyes 5 px apart or more (GFPGANer skips those)",
    "no_restorer_served": "the server has no GFPGAN installed",
}


@dataclass(frozen=True)
class PlanInputs:
    """What the planner knows: the caller's options, the server's backends, the measures."""

    requested_backend: str
    weight: float | None  # the caller's, if given
    params: Mapping[str, Any]  # the restore options passed through (version, upscale, …)
    background: str | None  # the caller's background upsampler (the seed defaults to realesrgan)
    available: Mapping[str, bool]
    background_served: bool
    face_count: int | None  # None: the face probe failed
    restorable: int | None
    blur: float
    blur_measured_on: str  # "faces" or "image"
    noise: float


@dataclass(frozen=True)
class Decision:
    backend: str
    params: dict[str, Any]
    postproc: dict[str, Any]
    reason: str
    confidence: float
    detail: dict[str, Any]


def decide(inputs: PlanInputs) -> Decision:
    level, margin = degradation(inputs.blur, inputs.noise)
    reason = reason_for(inputs, level)
    backend, backend_rule = choose_backend(inputs, level)
    weight, weight_rule = choose_weight(inputs.weight, level)
    background, background_rule = choose_background(inputs)
    return Decision(
        backend=backend,
        params={**inputs.params, "weight": weight},
        postproc={"background": background},
        reason=reason,
        confidence=confidence(inputs, reason, margin),
        detail={
            "routing_rules": dict(ROUTING_RULES),
            "decision_inputs": {
                "blur": inputs.blur,
                "blur_measured_on": inputs.blur_measured_on,
                "noise_sigma": inputs.noise,
                "face_count": inputs.face_count,
                "restorable_faces": inputs.restorable,
            },
            "degradation": level,
            "margin_octaves": round(margin, 3),
            "backend_rule": backend_rule,
            "weight_rule": weight_rule,
            "background_rule": background_rule,
            "available": dict(inputs.available),
        },
    )


def degradation(blur: float, noise: float) -> tuple[str, float]:
    """The level and its margin: octaves to the nearest threshold that would change it."""
    b, n = max(blur, BLUR_FLOOR), max(noise, NOISE_FLOOR)
    blur_heavy, noise_heavy = math.log2(BLUR_HEAVY / b), math.log2(n / NOISE_HEAVY)
    blur_short, noise_over = math.log2(BLUR_SHARP / b), math.log2(n / NOISE_LOW)
    if b < BLUR_HEAVY or n >= NOISE_HEAVY:
        return "heavy_degradation", max(blur_heavy, noise_heavy)
    if b >= BLUR_SHARP and n < NOISE_LOW:
        return "few_artifacts", min(-blur_short, -noise_over)
    to_heavy = min(-blur_heavy, -noise_heavy)
    to_few = max(blur_short, noise_over)
    return "moderate_degradation", min(to_heavy, to_few)


def reason_for(inputs: PlanInputs, level: str) -> str:
    if not inputs.available.get(RESTORER, False):
        return "no_restorer_served"
    if inputs.face_count == 0:
        return "no_faces"
    if inputs.restorable == 0:
        return "faces_too_small"
    return level


def choose_backend(inputs: PlanInputs, level: str) -> tuple[str, str]:
    requested = BACKEND_ALIASES.get(inputs.requested_backend, inputs.requested_backend)
    if requested == RESTORER:
        return RESTORER, "gfpgan was asked for"
    if inputs.available.get(requested, False):
        return requested, f"{requested} was asked for and is served"
    if requested == "codeformer" or level == "heavy_degradation":
        note = "; the seed routes heavy degradation to codeformer, which is not served either"
    else:
        note = ""
    return RESTORER, f"{requested} is not served by this server, gfpgan is{note}"


def choose_weight(weight: float | None, level: str) -> tuple[float, str]:
    if weight is not None:
        return min(max(weight, 0.0), 1.0), "the caller's weight (clamped to 0..1)"
    chosen = LEVEL_WEIGHTS[level]
    return chosen, f"{chosen:g} for {level} (weight 1 keeps only the restored face)"


def choose_background(inputs: PlanInputs) -> tuple[str | None, str]:
    if inputs.background is None or str(inputs.background).lower() in ("", "none"):
        return None, "no background upsampler was asked for"
    name = str(inputs.background).lower()
    if name != "realesrgan":
        return None, f"{name} is not served; Facet's background upsampler is realesrgan"
    if not inputs.background_served:
        return None, f"the server has no {BACKGROUND_UPSCALER} installed"
    return "realesrgan", f"{BACKGROUND_UPSCALER} enhances the background on the server"


def confidence(inputs: PlanInputs, reason: str, margin: float) -> float:
    if reason == "no_restorer_served":
        return 0.05
    value = 0.5 + 0.45 * math.tanh(margin)
    if inputs.face_count is None:
        value -= 0.2
    elif inputs.restorable:
        value += 0.05
    else:
        value -= 0.05
    requested = BACKEND_ALIASES.get(inputs.requested_backend, inputs.requested_backend)
    if requested != RESTORER and not inputs.available.get(requested, False):
        value -= 0.1
    return round(min(0.95, max(0.05, value)), 3)
