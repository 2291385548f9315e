"""How a text query's two similarities become one score.

The seed's search embeds the query with its sentence transformer and compares it with each
image's caption and object tags; Facet does that ("text" space: all-MiniLM-L6-v2 over the
caption and objects) and also compares CLIP's text embedding of the query with the CLIP image
embedding ("clip" space). The score is the weighted mean of the two cosines,

    score = (w_text · cos_text + w_clip · cos_clip) / (w_text + w_clip),   distance = 1 − score,

with both weights 1 when both spaces come from real weights. A space whose vectors came from a
model on synthetic weights gets weight 0 while another space is real (a random CLIP would only
add noise to the real MiniLM + NanoDet ranking an offline install has); when every space is
synthetic they are averaged and every answer carries the warning. A candidate found in one
space is scored in the other from its stored vector, so the mean is over the same spaces for
every image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranked:
    image_id: str
    score: float
    distance: float
    by_space: dict[str, float]


def space_weights(synthetic: Mapping[str, bool]) -> dict[str, float]:
    """1 for every real space; when none is real, 1 for every space."""
    real = {space: 1.0 for space, fake in synthetic.items() if not fake}
    return real or {space: 1.0 for space in synthetic}


def combine(
    scores: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    *,
    limit: int,
    min_score: float | None,
) -> list[Ranked]:
    """`scores[space][image_id]` → the best `limit` images by weighted mean, ties by id. An
    image without a score in a weighted space (no vector there) counts that space as 0."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one space needs a positive weight")
    ids = sorted({image_id for space in weights for image_id in scores.get(space, {})})
    ranked = []
    for image_id in ids:
        by_space = {space: scores.get(space, {}).get(image_id, 0.0) for space in weights}
        score = sum(weights[space] * value for space, value in by_space.items()) / total
        score = min(1.0, max(-1.0, score))
        if min_score is None or score >= min_score:
            ranked.append(Ranked(image_id, score, 1.0 - score, by_space))
    ranked.sort(key=lambda item: (-item.score, item.image_id))
    return ranked[:limit]


def candidate_count(limit: int, floor: int = 50) -> int:
    """How many neighbours to fetch from each space before combining: enough that an image
    ranked well by the mean but lower in one space is still among the candidates."""
    return max(floor, 4 * limit)


def parse_objects(text: str | None) -> list[str] | None:
    """The seed's comma-separated `objects` filter; None (no filter) when absent or empty."""
    if text is None:
        return None
    names = [name.strip().lower() for name in text.split(",")]
    kept = [name for name in names if name]
    return kept or None


def unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))
