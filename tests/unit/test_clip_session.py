"""TritonClip: photos resized here and sent in chunks of the image model's batch limit, texts in
chunks of embed_clip_text's text limit, both read from the catalog; vectors back in order."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from gateway.context import clip_session
from gateway.context.clip_session import EMBEDDING_SIZE, TritonClip
from gateway.errors import UpstreamError
from triton_core.catalog import ModelFacts


class FakeTriton:
    """Answers like Triton for CLIP: one vector per image or text, marked with its row."""

    def __init__(self, image_batch: int, max_texts: int, drop: bool = False) -> None:
        self.image_batch = image_batch
        self.max_texts = max_texts
        self.drop = drop
        self.calls: list[tuple[str, str, tuple[int, ...], str]] = []

    async def model_facts(self, model: str) -> ModelFacts:
        if model == clip_session.IMAGE_MODEL:
            return ModelFacts(model, self.image_batch, (), (), None, None, (), {})
        parameters = {clip_session.MAX_TEXTS_PARAMETER: str(self.max_texts)}
        return ModelFacts(model, 0, (), (), None, None, (), parameters)

    async def infer(self, model: str, inputs: dict[str, Any], outputs: list[str]) -> dict:
        ((name, array),) = inputs.items()
        self.calls.append((model, name, array.shape, str(array.dtype)))
        if model == clip_session.IMAGE_MODEL:
            assert len(array) <= self.image_batch
            marks = array[:, 0, 0, 0].astype(np.float32)  # each photo's own value
        else:
            assert len(array) <= self.max_texts
            marks = np.array([len(t) for t in array], np.float32)
        vectors = np.zeros((len(array), EMBEDDING_SIZE), np.float32)
        vectors[:, 0] = marks
        return {outputs[0]: vectors[1:] if self.drop else vectors}


def photos(count: int) -> list[np.ndarray]:
    """Uniform photos of several sizes, the i-th of value i (a resize keeps it)."""
    sizes = [(300, 400), (224, 224), (640, 480), (50, 80)]
    return [np.full((*sizes[i % 4], 3), i, np.uint8) for i in range(count)]


def test_five_photos_reach_a_model_of_batch_limit_two_as_two_two_one() -> None:
    triton = FakeTriton(image_batch=2, max_texts=8)
    clip = TritonClip(triton)  # type: ignore[arg-type]
    vectors = asyncio.run(clip.embed_images(photos(5)))
    assert [c[2][0] for c in triton.calls] == [2, 2, 1]
    assert {(c[0], c[1], c[2][1:], c[3]) for c in triton.calls} == {
        ("clip_vit_b32_visual", "image", (224, 224, 3), "uint8")
    }
    assert vectors.shape == (5, EMBEDDING_SIZE) and vectors.dtype == np.float32
    assert vectors[:, 0].tolist() == [0, 1, 2, 3, 4]  # in request order


def test_texts_go_to_embed_clip_text_as_utf8_in_chunks_of_its_text_limit() -> None:
    triton = FakeTriton(image_batch=2, max_texts=3)
    clip = TritonClip(triton)  # type: ignore[arg-type]
    texts = ["a", "bb", "café", "猫", "", "a photo of a cat", "x"]
    vectors = asyncio.run(clip.embed_texts(texts))
    assert [(c[0], c[1], c[2]) for c in triton.calls] == [
        ("embed_clip_text", "text", (3,)),
        ("embed_clip_text", "text", (3,)),
        ("embed_clip_text", "text", (1,)),
    ]
    assert vectors[:, 0].tolist() == [len(t.encode()) for t in texts]


def test_nothing_to_embed_calls_nothing() -> None:
    triton = FakeTriton(image_batch=2, max_texts=3)
    clip = TritonClip(triton)  # type: ignore[arg-type]
    assert asyncio.run(clip.embed_images([])).shape == (0, EMBEDDING_SIZE)
    assert asyncio.run(clip.embed_texts([])).shape == (0, EMBEDDING_SIZE)
    assert triton.calls == []


def test_an_answer_with_too_few_vectors_is_an_upstream_error() -> None:
    clip = TritonClip(FakeTriton(image_batch=4, max_texts=4, drop=True))  # type: ignore[arg-type]
    with pytest.raises(UpstreamError, match="clip_vit_b32_visual"):
        asyncio.run(clip.embed_images(photos(3)))
    with pytest.raises(UpstreamError, match="embed_clip_text"):
        asyncio.run(clip.embed_texts(["a", "b"]))


def test_the_session_names_the_models_the_extractor_reports() -> None:
    clip = TritonClip(FakeTriton(1, 1))  # type: ignore[arg-type]
    assert (clip.image_model, clip.text_model) == ("clip_vit_b32_visual", "embed_clip_text")
