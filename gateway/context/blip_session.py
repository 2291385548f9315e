"""BLIP captions from Triton's `caption_blip`, whose decoding loop (greedy or beam search over
the vision tower and the text decoder) runs inside Triton: photos resized here to 384²
(gateway/context/blip_image.py, as BlipImageProcessor does; normalised inside the graph), one
call per chunk of images, one caption string per photo back.

caption_blip is a Python (BLS) model without a batch axis of its own (max_batch_size 0): one
request carries up to its `max_images` parameter of images, which is the chunk size here when
the model states no batch limit. Beams and new tokens left out (None) take the model's own
defaults; values beyond its stated limits are refused here, before any call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.context.blip_image import BLIP_SIZE, to_blip_batch
from gateway.errors import BadRequest, UpstreamError
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches
from triton_core.catalog import ModelFacts

MODEL = "caption_blip"
# The tensors the session sends and reads; tests/unit/test_model_catalog.py checks them.
IMAGE_INPUT = "image"  # UINT8 [N, 384, 384, 3]
NUM_BEAMS_INPUT = "num_beams"  # INT32 [1], optional
MAX_NEW_TOKENS_INPUT = "max_new_tokens"  # INT32 [1], optional
CAPTION_OUTPUT = "caption"  # BYTES [N], UTF-8
IMAGE_SIZE = BLIP_SIZE
# caption_blip's parameters the session reads from its config.
MAX_IMAGES_PARAMETER = "max_images"
MAX_NUM_BEAMS_PARAMETER = "max_num_beams"
MAX_NEW_TOKENS_PARAMETER = "max_new_tokens_limit"

Rgb = npt.NDArray[np.uint8]


def request_limit(facts: ModelFacts) -> int:
    """How many images one call may carry: the model's batch limit, or, for a model without a
    batch axis (caption_blip), its `max_images` parameter."""
    if facts.max_batch_size > 0:
        return facts.max_batch_size
    try:
        return max(1, int(facts.parameters[MAX_IMAGES_PARAMETER]))
    except (KeyError, ValueError) as exc:
        raise UpstreamError(
            f"model '{facts.name}' states neither a batch limit nor '{MAX_IMAGES_PARAMETER}'"
        ) from exc


def _checked(facts: ModelFacts, name: str, value: int | None, parameter: str) -> int | None:
    if value is None:
        return None
    limit = int(facts.parameters.get(parameter, "0")) or None
    if value < 1 or (limit is not None and value > limit):
        bound = f"1..{limit}" if limit is not None else "at least 1"
        raise BadRequest(f"{name} must be in {bound}, got {value}")
    return value


class TritonCaptioner:
    """The extractor's Captioner: one caption per RGB photo, in order."""

    def __init__(self, client: TritonClient, model: str = MODEL) -> None:
        self._client = client
        self.model = model

    async def caption(
        self,
        images: Sequence[Rgb],
        *,
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Captions of RGB uint8 photos of any size; `num_beams` 1 is greedy."""
        if not images:
            return []
        facts = await self._client.model_facts(self.model)
        options: dict[str, npt.NDArray[np.int32]] = {}
        for name, value, parameter in (
            (NUM_BEAMS_INPUT, num_beams, MAX_NUM_BEAMS_PARAMETER),
            (MAX_NEW_TOKENS_INPUT, max_new_tokens, MAX_NEW_TOKENS_PARAMETER),
        ):
            checked = _checked(facts, name, value, parameter)
            if checked is not None:
                options[name] = np.array([checked], np.int32)
        # Resizing large photos takes milliseconds each: off the event loop.
        batch = await asyncio.to_thread(to_blip_batch, list(images))

        async def caption_chunk(chunk: Rgb) -> npt.NDArray[np.object_]:
            outputs = await self._client.infer(
                self.model, {IMAGE_INPUT: chunk, **options}, [CAPTION_OUTPUT]
            )
            return np.asarray(outputs[CAPTION_OUTPUT], dtype=np.object_).reshape(-1)

        try:
            answers = await run_in_batches(caption_chunk, batch, request_limit(facts))
        except ValueError as exc:  # a chunk answered with the wrong number of captions
            raise UpstreamError(f"model '{self.model}': {exc}") from exc
        return [a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in answers]
