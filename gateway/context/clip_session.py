"""CLIP ViT-B/32 from Triton: photos through `clip_vit_b32_visual` (resized and cropped here,
gateway/context/clip_image.py; normalised inside the graph) and texts through
`embed_clip_text` (tokenised inside Triton). Both answer 512-d unit vectors in one space, so an
image's and a text's dot product is their cosine."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.context.clip_image import CLIP_SIZE, to_clip_batch
from gateway.errors import UpstreamError
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches

IMAGE_MODEL = "clip_vit_b32_visual"
TEXT_MODEL = "embed_clip_text"
# The model embed_clip_text calls (its `composed_of`): its batch limit bounds one encoder call.
TEXT_ENCODER = "clip_vit_b32_textual"
# The tensors the session sends and reads; tests/unit/test_model_catalog.py checks them.
IMAGE_INPUT = "image"  # UINT8 [N, 224, 224, 3]
IMAGE_OUTPUT = "embedding"  # FP32 [N, 512]
TEXT_INPUT = "text"  # BYTES [N], UTF-8
TEXT_OUTPUT = "embedding"  # FP32 [N, 512]
EMBEDDING_SIZE = 512
IMAGE_SIZE = CLIP_SIZE
# embed_clip_text's `max_texts` parameter bounds one request; it is read from the config.
MAX_TEXTS_PARAMETER = "max_texts"
DEFAULT_MAX_TEXTS = 64

Vectors = npt.NDArray[np.float32]
Rgb = npt.NDArray[np.uint8]


class TritonClip:
    """The extractor's ImageTextEmbedder: `embed_images` and `embed_texts`, [N, 512] each."""

    def __init__(
        self, client: TritonClient, image_model: str = IMAGE_MODEL, text_model: str = TEXT_MODEL
    ) -> None:
        self._client = client
        self.image_model = image_model
        self.text_model = text_model

    async def embed_images(self, images: Sequence[Rgb]) -> Vectors:
        """RGB uint8 photos of any size → [N, 512] unit vectors, sent in chunks of the image
        model's own batch limit (read from its config)."""
        if not images:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        # Resizing large photos is milliseconds each: off the event loop.
        batch = await asyncio.to_thread(to_clip_batch, list(images))
        limit = (await self._client.model_facts(self.image_model)).max_batch_size
        try:
            return await run_in_batches(self._embed_image_batch, batch, limit)
        except ValueError as exc:  # a batch answered with the wrong number of vectors
            raise UpstreamError(f"model '{self.image_model}': {exc}") from exc

    async def _embed_image_batch(self, batch: Rgb) -> Vectors:
        outputs = await self._client.infer(self.image_model, {IMAGE_INPUT: batch}, [IMAGE_OUTPUT])
        return np.asarray(outputs[IMAGE_OUTPUT], dtype=np.float32)

    async def embed_texts(self, texts: Sequence[str]) -> Vectors:
        """UTF-8 texts → [N, 512] unit vectors, in chunks of embed_clip_text's text limit."""
        if not texts:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        facts = await self._client.model_facts(self.text_model)
        limit = max(1, int(facts.parameters.get(MAX_TEXTS_PARAMETER, str(DEFAULT_MAX_TEXTS))))
        encoded = np.array([text.encode("utf-8") for text in texts], dtype=np.object_)
        try:
            return await run_in_batches(self._embed_text_batch, encoded, limit)
        except ValueError as exc:
            raise UpstreamError(f"model '{self.text_model}': {exc}") from exc

    async def _embed_text_batch(self, batch: npt.NDArray[np.object_]) -> Vectors:
        outputs = await self._client.infer(self.text_model, {TEXT_INPUT: batch}, [TEXT_OUTPUT])
        return np.asarray(outputs[TEXT_OUTPUT], dtype=np.float32)
