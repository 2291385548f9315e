"""The face-swap sessions backed by Triton: ArcFace embeddings, the swap latent, and the
inswapper uint8 ensemble. Each sends everything it is given, chunked by its model's own batch
limit as Triton's config states it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches

Array = npt.NDArray[np.float32]
Batch = npt.NDArray[Any]

# The API's names for the served models; a unit test checks them against the committed configs.
EMBEDDER: Final = "embed_arcface_w600k_r50"
EMBEDDER_INPUT: Final = "face"
EMBEDDER_OUTPUT: Final = "embedding"
LATENT_MODEL: Final = "swap_latent"
LATENT_INPUT: Final = "embedding"
LATENT_OUTPUT: Final = "latent"
SWAPPER: Final = "swap_inswapper_128"
SWAPPER_TARGET: Final = "target"
SWAPPER_SOURCE: Final = "source"
SWAPPER_OUTPUT: Final = "swapped_face"
# Every model a face swap needs besides the detector.
SWAP_MODELS: Final = (EMBEDDER, LATENT_MODEL, SWAPPER)


class TritonFaceEmbedder:
    """Aligned 112² RGB crops → raw (not normalised) 512-d ArcFace embeddings."""

    def __init__(self, client: TritonClient, model: str = EMBEDDER) -> None:
        self._client = client
        self.model = model

    async def embed(self, crops: npt.NDArray[np.uint8]) -> Array:
        return await _batched(self._client, self.model, self._embed, crops)

    async def _embed(self, crops: npt.NDArray[np.uint8]) -> Array:
        outputs = await self._client.infer(
            self.model, {EMBEDDER_INPUT: np.ascontiguousarray(crops)}, [EMBEDDER_OUTPUT]
        )
        return outputs[EMBEDDER_OUTPUT].astype(np.float32, copy=False)


class TritonLatentMaker:
    """Identity embeddings → the swapper's source latents (normalise → @emap → normalise)."""

    def __init__(self, client: TritonClient, model: str = LATENT_MODEL) -> None:
        self._client = client
        self.model = model

    async def latent(self, embeddings: Array) -> Array:
        return await _batched(self._client, self.model, self._latent, embeddings)

    async def _latent(self, embeddings: Array) -> Array:
        outputs = await self._client.infer(
            self.model,
            {LATENT_INPUT: np.ascontiguousarray(embeddings, dtype=np.float32)},
            [LATENT_OUTPUT],
        )
        return outputs[LATENT_OUTPUT].astype(np.float32, copy=False)


class TritonFaceSwapper:
    """Aligned 128² RGB target crops and one latent each → swapped 128² RGB crops."""

    def __init__(self, client: TritonClient, model: str = SWAPPER) -> None:
        self._client = client
        self.model = model

    async def swap(self, targets: npt.NDArray[np.uint8], latents: Array) -> npt.NDArray[np.uint8]:
        if len(targets) != len(latents):
            raise ValueError(f"{len(targets)} target crops for {len(latents)} latents")

        async def swap_chunk(indices: Batch) -> Batch:
            return await self._swap(targets[indices], latents[indices])

        return await _batched(self._client, self.model, swap_chunk, np.arange(len(targets)))

    async def _swap(self, targets: npt.NDArray[np.uint8], latents: Array) -> npt.NDArray[np.uint8]:
        outputs = await self._client.infer(
            self.model,
            {
                SWAPPER_TARGET: np.ascontiguousarray(targets),
                SWAPPER_SOURCE: np.ascontiguousarray(latents, dtype=np.float32),
            },
            [SWAPPER_OUTPUT],
        )
        return outputs[SWAPPER_OUTPUT].astype(np.uint8, copy=False)


async def _batched(
    client: TritonClient, model: str, call: Callable[[Batch], Awaitable[Batch]], items: Batch
) -> Batch:
    """`call` over `items` in chunks of the model's batch limit. A model without a batch axis
    (max_batch_size 0, e.g. an official graph fixed at batch 1 served by several instances)
    takes one item at a time, sent as a batch of one through its fixed leading axis."""
    limit = max(1, (await client.model_facts(model)).max_batch_size)
    try:
        return await run_in_batches(call, items, limit)
    except ValueError as exc:  # a batch answered with the wrong number of rows
        raise UpstreamError(f"model '{model}': {exc}") from exc
