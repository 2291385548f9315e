"""The plan's `faces`: what the server's detector found, and how many of those faces the
restoration will really work on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from clients.gfpp.session import Detection

# GFPGANer's eye_dist_threshold: the server's pipeline skips faces whose eyes are closer.
MIN_EYE_DISTANCE: Final = 5.0


def face_stats(
    detections: Sequence[Detection], *, detector_model: str, min_score: float
) -> dict[str, Any]:
    """Counts, sizes (box heights in pixels, as the seed's face probe reports them), boxes,
    scores and eye distances, rounded to 0.01 so equal inputs print equally."""
    kept = [d for d in detections if d.score >= min_score]
    restorable = [d for d in kept if d.eye_distance >= MIN_EYE_DISTANCE]
    return {
        "count": len(kept),
        "face_count": len(kept),  # the key the seed's planner reads
        "restorable": len(restorable),
        "sizes": [round(d.height, 2) for d in kept],
        "boxes": [[round(v, 2) for v in d.box] for d in kept],
        "scores": [round(d.score, 4) for d in kept],
        "eye_distances": [round(d.eye_distance, 2) for d in kept],
        "detector": detector_model,
        "min_score": min_score,
    }


def restorable_boxes(detections: Sequence[Detection], min_score: float) -> list[Detection]:
    return [d for d in detections if d.score >= min_score and d.eye_distance >= MIN_EYE_DISTANCE]
