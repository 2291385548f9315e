"""Chunking by a model's batch limit: one helper for tiles, faces and every later family."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from gateway.faces.triton_sessions import TritonFaceRestorer
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from triton_core.batching import batch_slices, run_in_batches
from triton_core.catalog import ModelFacts


def test_slices_cover_every_item_once_and_none_exceeds_the_limit():
    slices = batch_slices(11, 4)
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 11)]
    assert batch_slices(0, 4) == []


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        batch_slices(3, 0)


def test_results_come_back_in_order_and_joined():
    sizes: list[int] = []

    async def double(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return batch * 2

    items = np.arange(7)
    result = asyncio.run(run_in_batches(double, items, 3))
    assert sizes == [3, 3, 1]
    assert result.tolist() == [0, 2, 4, 6, 8, 10, 12]


def test_an_answer_with_the_wrong_row_count_is_an_error():
    async def drop_one(batch: np.ndarray) -> np.ndarray:
        return batch[1:]

    with pytest.raises(ValueError, match="came back with"):
        asyncio.run(run_in_batches(drop_one, np.arange(4), 4))


class FakeTriton:
    """Answers like Triton would for a model whose config says `max_batch_size`."""

    def __init__(self, max_batch_size: int, output: str, scale: int = 1) -> None:
        self.max_batch_size = max_batch_size
        self.output = output
        self.scale = scale
        self.batches: list[int] = []

    async def model_facts(self, model: str) -> ModelFacts:
        return ModelFacts(model, self.max_batch_size, (), (), None, None, (), {})

    async def infer(self, model: str, inputs: dict[str, Any], outputs: list[str]) -> dict:
        (array,) = inputs.values()
        if len(array) > self.max_batch_size:
            raise AssertionError(f"batch-size must be <= {self.max_batch_size}")
        self.batches.append(len(array))
        grown = array.repeat(self.scale, axis=1).repeat(self.scale, axis=2)
        return {self.output: grown}


def test_six_faces_reach_a_model_of_batch_limit_four_as_four_then_two():
    triton = FakeTriton(4, "restored_face")
    restorer = TritonFaceRestorer(triton)  # type: ignore[arg-type]
    faces = np.zeros((6, 512, 512, 3), np.uint8)
    restored = asyncio.run(restorer.restore(faces))
    assert triton.batches == [4, 2] and restored.shape == faces.shape


def test_tiles_follow_the_upscale_ensembles_batch_limit():
    triton = FakeTriton(3, "upscaled_image", scale=4)
    upscaler = TritonTileUpscaler(triton, "realesrgan_x4plus")  # type: ignore[arg-type]
    tiles = np.zeros((7, 8, 8, 3), np.uint8)
    out = asyncio.run(upscaler.upscale_tiles(tiles))
    assert triton.batches == [3, 3, 1] and out.shape == (7, 32, 32, 3)
