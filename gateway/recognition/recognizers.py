"""Which face embedder recognises people, how its distances are measured and where it stops.

Two are served: dlib's face recognition ResNet (`embed_dlib_resnet_v1`, real weights from a
registry package) and ArcFace (`embed_arcface_w600k_r50`, official weights only when the
operator supplies them). Each keeps its own space in the gallery: embeddings of different
networks are not comparable, so switching FACET_RECOGNIZER means enrolling people again.

Thresholds, per model, from the embedder's own published figure:
- dlib: Euclidean distance between the raw 128-d descriptors, match at < 0.6 (dlib's
  `dnn_face_recognition_ex`; the distance its metric loss was trained with). The gallery keeps
  unit vectors for cosine search, and each face's descriptor norm beside it, so the raw distance
  is exact: |a−b|² = |a|² + |b|² − 2|a||b|cos. On the registry packages' real photos (three of
  Obama, Biden, Hanks, six people of a group photo; dlib-bin's own descriptors) the three
  same-person pairs measure 0.35–0.45 and the closest different people 0.56 (two of the
  group's six); served, enrolled Obama vs his second photo 0.39, Biden 0.84, the group's six
  0.75–0.91 (tests/e2e/test_recognition_api.py prints them).
- ArcFace w600k_r50: cosine distance, match at < 0.5, immich's default maximum distance for the
  same buffalo_l model. Not checked on real photos here: its official weights are not
  redistributable and no offline install has them.
The chip size each embedder takes is read from its served config, not typed here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.faces.embed_align import cut_embedding_chips
from gateway.faces.swap_pipeline import cut_recognition_crops
from gateway.faces.swap_sessions import EMBEDDER_INPUT, EMBEDDER_OUTPUT, TritonFaceEmbedder
from gateway.faces.types import Face
from gateway.triton_client import TritonClient
from triton_core.catalog import ModelCatalog

Image = npt.NDArray[np.uint8]
Metric = Literal["euclidean", "cosine"]
CutChips = Callable[[Image, Sequence[Face], int], Image]


def _dlib_chips(image: Image, faces: Sequence[Face], size: int) -> Image:
    return cut_embedding_chips(image, [face.landmarks for face in faces], size)


def _arcface_crops(image: Image, faces: Sequence[Face], size: int) -> Image:
    return cut_recognition_crops([(image, face) for face in faces])


@dataclass(frozen=True)
class Recognizer:
    name: str  # FACET_RECOGNIZER's word for it
    model: str  # the served uint8 ensemble
    space: str  # its space in the gallery store
    metric: Metric
    threshold: float  # a match when the distance is below it
    threshold_source: str
    cut: CutChips

    def distance(self, cosine: float, norm: float, other_norm: float) -> float:
        """The model's own distance between two faces, from their unit-vector cosine and the
        norms of their raw embeddings."""
        if self.metric == "cosine":
            return max(0.0, 1.0 - cosine)
        squared = norm * norm + other_norm * other_norm - 2.0 * norm * other_norm * cosine
        return float(np.sqrt(max(0.0, squared)))


DLIB: Final = Recognizer(
    name="dlib",
    model="embed_dlib_resnet_v1",
    space="dlib_resnet_v1",
    metric="euclidean",
    threshold=0.6,
    threshold_source="dlib's published decision threshold for raw descriptors",
    cut=_dlib_chips,
)
ARCFACE: Final = Recognizer(
    name="arcface",
    model="embed_arcface_w600k_r50",
    space="arcface_w600k_r50",
    metric="cosine",
    threshold=0.5,
    threshold_source="immich's default maximum cosine distance for w600k_r50",
    cut=_arcface_crops,
)
RECOGNIZERS: Final = {r.name: r for r in (DLIB, ARCFACE)}
REAL_KINDS: Final = frozenset({"official", "package"})


def choose_recognizer(
    setting: str, catalog: ModelCatalog, enrolled_spaces: Collection[str] = ()
) -> Recognizer:
    """FACET_RECOGNIZER. `auto` keeps the recognizer whose space the gallery already holds
    (switching would make every enrolled person unknown); an empty gallery takes ArcFace only
    when its weights are known to be real (a model Triton lists but has not loaded is
    "unknown", not real), else dlib."""
    if setting in RECOGNIZERS:
        return RECOGNIZERS[setting]
    for recognizer in (DLIB, ARCFACE):
        if recognizer.space in enrolled_spaces:
            return recognizer
    kinds = set(catalog.weights(ARCFACE.model).kind.split("+"))
    return ARCFACE if kinds <= REAL_KINDS else DLIB


@dataclass(frozen=True)
class Embeddings:
    unit: npt.NDArray[np.float32]  # [N, dim], L2-normalised
    norms: npt.NDArray[np.float32]  # [N], of the raw embeddings


class FaceEncoder:
    """Every face of a photo embedded in one call (chunked by the model's batch limit)."""

    def __init__(self, client: TritonClient, recognizer: Recognizer) -> None:
        self._client = client
        self.recognizer = recognizer
        self._embedder = TritonFaceEmbedder(client, recognizer.model)

    async def dimension(self) -> int:
        facts = await self._client.model_facts(self.recognizer.model)
        return int(facts.output(EMBEDDER_OUTPUT).dims[-1])

    async def encode(self, image: Image, faces: Sequence[Face]) -> Embeddings:
        facts = await self._client.model_facts(self.recognizer.model)
        size = int(facts.input(EMBEDDER_INPUT).dims[-2])  # [size, size, 3]
        if not faces:
            dim = int(facts.output(EMBEDDER_OUTPUT).dims[-1])
            return Embeddings(np.zeros((0, dim), np.float32), np.zeros(0, np.float32))
        chips = await asyncio.to_thread(self.recognizer.cut, image, faces, size)
        raw = np.asarray(await self._embedder.embed(chips), dtype=np.float32)
        return to_embeddings(raw, len(faces), self.recognizer.model)


def to_embeddings(raw: npt.NDArray[np.float32], count: int, model: str) -> Embeddings:
    norms = np.linalg.norm(raw, axis=1) if raw.ndim == 2 else np.zeros(0)
    if raw.ndim != 2 or len(raw) != count or not np.isfinite(raw).all() or not (norms > 0).all():
        raise UpstreamError(f"model '{model}' answered {count} faces with unusable embeddings")
    return Embeddings((raw / norms[:, None]).astype(np.float32), norms.astype(np.float32))
