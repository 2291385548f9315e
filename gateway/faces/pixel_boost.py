"""Pixel boost: run a fixed-size face model on a crop `factor` times larger than its input.

FaceFusion's scheme (`processors/pixel_boost.py`) is polyphase sub-sampling, not tiling: a
(S·b)² crop becomes b² crops of S², tile (i, j) taking the pixels [i::b, j::b]. Each tile is
the whole face at the model's resolution, shifted by a fraction of a pixel, so the model sees
every face it was trained on and the merged result has b times the detail of one pass.

Tiles are ordered crop by crop, and within a crop row phase i major, column phase j minor.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

Pixel = TypeVar("Pixel", bound=np.generic)


def split(crops: npt.NDArray[Pixel], factor: int) -> npt.NDArray[Pixel]:
    """N×(S·b)×(S·b)×C crops → (N·b²)×S×S×C tiles, tile (i, j) of a crop = crop[i::b, j::b]."""
    count, size, channels = check_crops(crops, factor)
    tile = size // factor
    phases = crops.reshape(count, tile, factor, tile, factor, channels)
    tiles = phases.transpose(0, 2, 4, 1, 3, 5).reshape(count * factor**2, tile, tile, channels)
    return np.ascontiguousarray(tiles)


def merge(tiles: npt.NDArray[Pixel], factor: int) -> npt.NDArray[Pixel]:
    """The inverse of `split`: (N·b²)×S×S×C tiles → N×(S·b)×(S·b)×C crops."""
    if factor < 1:
        raise ValueError(f"pixel boost factor must be at least 1, got {factor}")
    if tiles.ndim != 4 or tiles.shape[1] != tiles.shape[2] or len(tiles) % factor**2:
        raise ValueError(f"tiles must be (N·{factor}²)×S×S×C, got {tiles.shape}")
    count, tile, channels = len(tiles) // factor**2, tiles.shape[1], tiles.shape[3]
    phases = tiles.reshape(count, factor, factor, tile, tile, channels)
    size = tile * factor
    crops = phases.transpose(0, 3, 1, 4, 2, 5).reshape(count, size, size, channels)
    return np.ascontiguousarray(crops)


def check_crops(crops: npt.NDArray[Pixel], factor: int) -> tuple[int, int, int]:
    if factor < 1:
        raise ValueError(f"pixel boost factor must be at least 1, got {factor}")
    if crops.ndim != 4 or crops.shape[1] != crops.shape[2] or crops.shape[1] % factor:
        raise ValueError(f"crops must be N×S×S×C with S a multiple of {factor}, got {crops.shape}")
    return crops.shape[0], crops.shape[1], crops.shape[3]
