"""Pixel boost's polyphase split of a large crop into model-sized sub-crops, and the merge back."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.faces.pixel_boost import merge, split


def crops(count: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_split_then_merge_gives_back_the_exact_crops(factor):
    original = crops(3, 16 * factor)
    tiles = split(original, factor)
    assert tiles.shape == (3 * factor**2, 16, 16, 3) and tiles.dtype == np.uint8
    assert np.array_equal(merge(tiles, factor), original)


def test_tile_i_j_of_a_crop_takes_every_bth_pixel_from_row_i_and_column_j():
    original = crops(2, 12)
    tiles = split(original, 3)
    for face in range(2):
        for i in range(3):
            for j in range(3):
                tile = tiles[face * 9 + i * 3 + j]
                assert np.array_equal(tile, original[face, i::3, j::3])


def test_merge_puts_each_tile_back_on_its_own_phase():
    tiles = np.stack([np.full((4, 4, 1), value, np.uint8) for value in (10, 20, 30, 40)])
    merged = merge(tiles, 2)[0, :, :, 0]
    assert merged[:2, :2].tolist() == [[10, 20], [30, 40]]
    assert (merged[0::2, 1::2] == 20).all() and (merged[1::2, 0::2] == 30).all()


def test_sizes_that_do_not_divide_are_rejected():
    with pytest.raises(ValueError, match="multiple of 3"):
        split(crops(1, 16), 3)
    with pytest.raises(ValueError, match="tiles"):
        merge(crops(3, 8), 2)
    with pytest.raises(ValueError, match="at least 1"):
        split(crops(1, 8), 0)
