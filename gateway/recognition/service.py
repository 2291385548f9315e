"""Recognition as the routes and the camera use it: faces found, embedded all at once, matched
against the gallery in one query; images classified by CLIP zero-shot; COCO objects.

The models are Triton's: the face detector (FACET_RECOGNITION_DETECTOR), the recognizer's
embedding ensemble, CLIP's two towers and `detect_objects`. Every answer can say which of them
ran on synthetic weights (`synthetic_models`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.context.clip_session import TritonClip
from gateway.context.objects_session import Detection, TritonObjectDetector
from gateway.errors import BadRequest
from gateway.faces.triton_sessions import DETECTORS, TritonFaceDetector
from gateway.faces.types import Face
from gateway.recognition.consent import Consent
from gateway.recognition.gallery import Enrolment, FaceGallery, Match
from gateway.recognition.labels import DEFAULT_LABELS, LOGIT_SCALE, PROMPT
from gateway.recognition.recognizers import (
    RECOGNIZERS,
    FaceEncoder,
    Recognizer,
    choose_recognizer,
)
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from gateway.weights import describe_model, synthetic_in
from triton_core.catalog import ModelCatalog

Image = npt.NDArray[np.uint8]
# A registration photo must show one face clearly larger than any other: the consent is one
# person's, so a face of similar size beside it makes the choice a guess.
DOMINANT_AREA_RATIO = 2.0
CLASSIFIER = "clip_vit_b32"


@dataclass(frozen=True)
class Recognised:
    face: Face
    match: Match | None  # the nearest enrolled face (None: nobody enrolled with this model)
    recognizer: Recognizer  # the one that measured `match`


class RecognitionService:
    def __init__(
        self,
        settings: Settings,
        client: TritonClient,
        gallery: FaceGallery,
        clip: TritonClip,
        objects: TritonObjectDetector,
    ) -> None:
        self._settings = settings
        self._client = client
        self.gallery = gallery
        self._clip = clip
        self._objects = objects
        self._label_vectors: dict[tuple[str, ...], npt.NDArray[np.float32]] = {}

    # -- which models ------------------------------------------------------------------------

    def recognizer(self, catalog: ModelCatalog | None = None) -> Recognizer:
        """The recognizer now (see choose_recognizer), by `catalog` or the last poll's."""
        chosen = self._client.catalog if catalog is None else catalog
        return choose_recognizer(self._settings.recognizer, chosen, self.gallery.spaces())

    async def current_recognizer(self) -> Recognizer:
        """The same, with Triton polled first if it never was (so a registration right after
        start-up does not take dlib only because the catalog is still empty)."""
        return self.recognizer(await self._client.current_catalog())

    @property
    def detector_model(self) -> str:
        return DETECTORS[self._settings.recognition_detector]

    def models(self) -> dict[str, dict[str, object]]:
        """Health's entries for the recognizers and the object detector."""
        served = [r.model for r in RECOGNIZERS.values()] + [self._objects.model]
        return {model: describe_model(self._client.catalog, model) for model in served}

    def synthetic_models(self, served: Sequence[str]) -> list[str]:
        return synthetic_in(self._client.catalog, served)

    # -- faces -------------------------------------------------------------------------------

    async def detect_faces(self, rgb: Image) -> list[Face]:
        await self._client.require_ready(self.detector_model)
        detector = TritonFaceDetector(self._client, self.detector_model)
        faces = await detector.detect(rgb, min_score=self._settings.recognition_face_score)
        return sorted(faces, key=lambda face: (face.box[0], face.box[1]))  # left to right

    async def register(
        self, rgb: Image, name: str, consent: Consent, person_id: str | None
    ) -> tuple[Face, Enrolment, Recognizer]:
        recognizer = await self.current_recognizer()
        await self._client.require_ready(recognizer.model)
        face = the_one_face(await self.detect_faces(rgb))
        encoder = FaceEncoder(self._client, recognizer)
        embedding = await encoder.encode(rgb, [face])
        dim = await encoder.dimension()
        enrolled = await asyncio.to_thread(
            self.gallery.enrol, recognizer, dim, embedding, name, consent, person_id
        )
        return face, enrolled, recognizer

    async def recognise(self, rgb: Image) -> list[Recognised]:
        recognizer = await self.current_recognizer()
        await self._client.require_ready(recognizer.model)
        faces = await self.detect_faces(rgb)
        return await self.recognise_faces(rgb, faces, recognizer)

    async def recognise_faces(
        self, rgb: Image, faces: list[Face], recognizer: Recognizer
    ) -> list[Recognised]:
        embeddings = await FaceEncoder(self._client, recognizer).encode(rgb, faces)
        matches = await asyncio.to_thread(self.gallery.match, recognizer, embeddings)
        return [
            Recognised(face, match, recognizer) for face, match in zip(faces, matches, strict=True)
        ]

    # -- images ------------------------------------------------------------------------------

    async def classify(
        self, rgb: Image, labels: Sequence[str] | None, top_k: int
    ) -> list[tuple[str, float]]:
        """CLIP zero-shot over `labels` (default: labels.DEFAULT_LABELS), best first."""
        chosen = tuple(labels or DEFAULT_LABELS)
        await self._client.require_ready(self._clip.image_model)
        await self._client.require_ready(self._clip.text_model)
        image = (await self._clip.embed_images([rgb]))[0]
        texts = await self._label_embeddings(chosen)
        logits = LOGIT_SCALE * (texts @ image).astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        return [(chosen[i], float(probabilities[i])) for i in order]

    async def detect_objects(self, rgb: Image, min_score: float) -> list[Detection]:
        await self._client.require_ready(self._objects.model)
        found = (await self._objects.detect([rgb], min_score=min_score))[0]
        return sorted(found, key=lambda d: -d.confidence)

    @property
    def classifier_models(self) -> list[str]:
        return [self._clip.image_model, self._clip.text_model]

    @property
    def object_model(self) -> str:
        return self._objects.model

    async def _label_embeddings(self, labels: tuple[str, ...]) -> npt.NDArray[np.float32]:
        """The default set's prompts are embedded once; a caller's own labels every call."""
        cached = self._label_vectors.get(labels)
        if cached is not None:
            return cached
        vectors = await self._clip.embed_texts([PROMPT.format(label=label) for label in labels])
        if labels == DEFAULT_LABELS:
            self._label_vectors[labels] = vectors
        return vectors


def the_one_face(faces: list[Face]) -> Face:
    """The registration's face: the only one, or one clearly larger than all the others."""
    if not faces:
        raise BadRequest("no face found in the image: register needs a photo of the person")
    ranked = sorted(faces, key=lambda face: -face.area)
    if len(ranked) > 1 and ranked[0].area < DOMINANT_AREA_RATIO * ranked[1].area:
        raise BadRequest(
            f"the image shows {len(ranked)} faces of similar size: register needs a photo in "
            "which the person's face is the only one, or clearly the largest"
        )
    return ranked[0]
