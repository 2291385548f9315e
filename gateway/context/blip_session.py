"""BLIP captions from Triton's `caption_blip` (the decoding loop runs inside Triton)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches

MODEL = "caption_blip"
INPUT = "image"  # UINT8 [N, 384, 384, 3]
OUTPUT = "caption"  # BYTES [N]
SIZE = 384

Rgb = npt.NDArray[np.uint8]


def to_blip_input(image: Rgb) -> Rgb:
    """BlipImageProcessor's resize: straight to 384², bicubic, no crop."""
    resized = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized, dtype=np.uint8)


class TritonCaptioner:
    def __init__(self, client: TritonClient, model: str = MODEL) -> None:
        self._client = client
        self.model = model

    async def caption(self, images: Sequence[Rgb]) -> list[str]:
        if not images:
            return []
        batch = await asyncio.to_thread(lambda: np.stack([to_blip_input(i) for i in images]))
        limit = (await self._client.model_facts(self.model)).max_batch_size
        try:
            answers = await run_in_batches(self._caption_batch, batch, limit)
        except ValueError as exc:
            raise UpstreamError(f"model '{self.model}': {exc}") from exc
        return [a.decode() if isinstance(a, bytes) else str(a) for a in answers.reshape(-1)]

    async def _caption_batch(self, batch: Rgb) -> npt.NDArray[np.object_]:
        outputs = await self._client.infer(self.model, {INPUT: batch}, [OUTPUT])
        return np.asarray(outputs[OUTPUT], dtype=np.object_)
