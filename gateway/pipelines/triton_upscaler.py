"""The tile session backed by Triton: the uint8 ensemble `upscale_<model>` does the work."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.triton_client import TritonClient

NATIVE_SCALE = 4


class TritonTileUpscaler:
    scale = NATIVE_SCALE

    def __init__(self, client: TritonClient, model: str) -> None:
        self._client = client
        self.ensemble = f"upscale_{model}"

    async def upscale_tiles(self, tiles: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        outputs = await self._client.infer(self.ensemble, {"image": tiles}, ["upscaled_image"])
        return outputs["upscaled_image"].astype(np.uint8, copy=False)
