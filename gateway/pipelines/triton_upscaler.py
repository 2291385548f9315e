"""The tile session backed by Triton: the uint8 ensemble `upscale_<model>` does the work, in
batches no larger than its config allows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.triton_client import TritonClient
from triton_core.batching import run_in_batches
from triton_core.catalog import ModelCatalog
from triton_core.upscale import NATIVE_SCALE

INPUT = "image"
OUTPUT = "upscaled_image"


class TritonTileUpscaler:
    scale = NATIVE_SCALE

    def __init__(self, client: TritonClient, model: str) -> None:
        self._client = client
        self.model = model
        self.ensemble = f"upscale_{model}"

    def catalog(self) -> ModelCatalog:
        return self._client.catalog

    async def batch_limit(self) -> int:
        """Tiles per call, as the ensemble's config says."""
        return (await self._client.model_facts(self.ensemble)).max_batch_size

    async def upscale_tiles(self, tiles: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        try:
            return await run_in_batches(self._infer, tiles, await self.batch_limit())
        except ValueError as exc:  # a batch answered with the wrong number of tiles
            raise UpstreamError(f"model '{self.ensemble}': {exc}") from exc

    async def _infer(self, tiles: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        outputs = await self._client.infer(self.ensemble, {INPUT: tiles}, [OUTPUT])
        return outputs[OUTPUT].astype(np.uint8, copy=False)
