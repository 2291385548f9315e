"""The context of a batch of images, computed with one call per model for the whole batch:
a caption (BLIP), COCO objects (NanoDet), a CLIP image embedding, and the sentence embedding
of the caption and the objects together (the text the seed's search compares a query with).

The four models are sessions behind small protocols, so this module is pure orchestration and
its unit tests run on fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.context.objects_session import Detection, object_names

Image = npt.NDArray[np.uint8]
Vectors = npt.NDArray[np.float32]


class Captioner(Protocol):
    model: str

    async def caption(self, images: Sequence[Image]) -> list[str]: ...


class ImageTextEmbedder(Protocol):
    """CLIP: images and texts in one 512-d space."""

    image_model: str
    text_model: str

    async def embed_images(self, images: Sequence[Image]) -> Vectors: ...

    async def embed_texts(self, texts: Sequence[str]) -> Vectors: ...


class TextEmbedder(Protocol):
    model: str

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


class ObjectDetector(Protocol):
    model: str

    async def detect(
        self, images: Sequence[Image], *, min_score: float
    ) -> list[list[Detection]]: ...


@dataclass(frozen=True)
class ContextModels:
    captioner: Captioner
    clip: ImageTextEmbedder
    text: TextEmbedder
    objects: ObjectDetector

    def names(self) -> dict[str, str]:
        """The served model behind each of the seed's model names."""
        return {
            "blip_model": self.captioner.model,
            "clip_model": self.clip.image_model,
            "clip_text_model": self.clip.text_model,
            "sentence_transformer": self.text.model,
            "object_detector": self.objects.model,
        }


@dataclass(frozen=True)
class ImageContext:
    caption: str
    detections: tuple[Detection, ...]
    objects: tuple[str, ...]
    clip: Vectors | None  # [512], unit; None when CLIP is not installed
    text: Vectors  # [384], unit: the embedding of `search_text`
    search_text: str


@dataclass(frozen=True)
class Installed:
    """Which optional models Triton has: a deployment may leave out BLIP or CLIP (captions
    are then empty and the CLIP space unused, and answers say so); MiniLM and NanoDet are
    always needed."""

    captioner: bool = True
    clip: bool = True


def search_text(caption: str, objects: Sequence[str]) -> str:
    """What the sentence embedding of an image is made of: its caption, then its objects."""
    if not objects:
        return caption
    listed = ", ".join(objects)
    return f"{caption}. Objects: {listed}" if caption else f"Objects: {listed}"


async def extract(
    models: ContextModels,
    images: Sequence[Image],
    *,
    object_score: float,
    installed: Installed = Installed(),
) -> list[ImageContext]:
    """The context of every image, the three image models running concurrently."""
    if not images:
        return []
    captions, clip_vectors, detections = await asyncio.gather(
        _captions(models, images, installed),
        _clip_vectors(models, images, installed),
        models.objects.detect(images, min_score=object_score),
    )
    _check_count("captions", captions, images)
    if clip_vectors is not None:
        _check_count("CLIP embeddings", clip_vectors, images)
    _check_count("detection lists", detections, images)
    names = [tuple(object_names(found)) for found in detections]
    texts = [search_text(caption, found) for caption, found in zip(captions, names, strict=True)]
    text_vectors = await models.text.embed(texts)
    _check_count("text embeddings", text_vectors, images)
    return [
        ImageContext(
            caption=captions[i],
            detections=tuple(detections[i]),
            objects=names[i],
            clip=None if clip_vectors is None else np.asarray(clip_vectors[i], np.float32),
            text=np.asarray(text_vectors[i], np.float32),
            search_text=texts[i],
        )
        for i in range(len(images))
    ]


async def _captions(
    models: ContextModels, images: Sequence[Image], installed: Installed
) -> list[str]:
    if not installed.captioner:
        return ["" for _ in images]
    return await models.captioner.caption(images)


async def _clip_vectors(
    models: ContextModels, images: Sequence[Image], installed: Installed
) -> Vectors | None:
    return await models.clip.embed_images(images) if installed.clip else None


def _check_count(what: str, answers: Sized, images: Sequence[Image]) -> None:
    if len(answers) != len(images):
        raise ValueError(f"{len(answers)} {what} for {len(images)} images")
