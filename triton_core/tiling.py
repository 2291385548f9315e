"""Fixed-shape tiling for tile-wise super-resolution, as pure functions over numpy arrays.

The grid follows Real-ESRGAN's `tile_process`: cores of `tile` pixels on a regular grid, each sent
with `pad` pixels of context on every side and cropped back to its core afterwards, so a model
whose receptive field fits in `pad` leaves no seams. Unlike upstream, every tile sent has the same
(tile + 2·pad)² shape: Triton only batches equal shapes and TensorRT engines are built for fixed
ones. At the image's edges a window is shifted inwards instead of padded, so the network meets
the real border exactly as it does untiled (its own zero padding); only an image smaller than
one window along an axis is filled out by reflection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

# The default tile geometry, one source for the gateway's settings, the clients' defaults and
# the TensorRT profile's optimum shape (the window Triton really receives).
DEFAULT_TILE: Final = 128
DEFAULT_TILE_PAD: Final = 10  # Real-ESRGAN's inference script default
DEFAULT_PRE_PAD: Final = 10


@dataclass(frozen=True)
class TilePlan:
    """One tile: its core region in image pixels and the origin of the window actually sent.

    The window is (tile + 2·pad) square and starts `pad` pixels above and left of the core, so
    `window_top`/`window_left` may be negative (that part is reflected padding).
    """

    top: int
    left: int
    height: int
    width: int
    window_top: int
    window_left: int

    @property
    def core_offset(self) -> tuple[int, int]:
        """Where the core starts inside the window, in input pixels."""
        return self.top - self.window_top, self.left - self.window_left


def window_size(tile: int, pad: int) -> int:
    return tile + 2 * pad


def plan_tiles(
    height: int, width: int, tile: int, pad: int, *, bounds: tuple[int, int] | None = None
) -> list[TilePlan]:
    """Row-major grid whose cores partition the height×width image exactly once.

    `bounds` is the size of the array the windows are cut from (the image plus its pre-pad;
    default: the image). A window is kept inside it wherever it fits, shifted inwards at the
    edges, so an edge core's context is the real border as the untiled network sees it; only
    an array smaller than one window needs reflected padding.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot tile an empty {height}×{width} image")
    if tile < 1 or pad < 0:
        raise ValueError(f"tile must be ≥ 1 and pad ≥ 0, got tile={tile} pad={pad}")
    extent_h, extent_w = bounds or (height, width)
    if extent_h < height or extent_w < width:
        raise ValueError(f"bounds {bounds} are smaller than the {height}×{width} image")
    size = window_size(tile, pad)
    return [
        TilePlan(
            top=row * tile,
            left=col * tile,
            height=min(tile, height - row * tile),
            width=min(tile, width - col * tile),
            window_top=window_origin(row * tile, pad, size, extent_h),
            window_left=window_origin(col * tile, pad, size, extent_w),
        )
        for row in range(math.ceil(height / tile))
        for col in range(math.ceil(width / tile))
    ]


def window_origin(core_start: int, pad: int, size: int, extent: int) -> int:
    """Where a window starts along one axis: `pad` before its core, moved inside [0, extent)
    when the window fits there (it still holds the whole core: cores are at most size − 2·pad)."""
    start = core_start - pad
    if extent < size:
        return start
    return min(max(start, 0), extent - size)


def pad_reflect(
    image: npt.NDArray[np.uint8], top: int, bottom: int, left: int, right: int
) -> npt.NDArray[np.uint8]:
    """Mirror-pad an H×W(×C) image without repeating the edge pixel (OpenCV's REFLECT_101).

    numpy keeps mirroring when a pad is wider than the image; a one-pixel axis has nothing to
    mirror, so it is replicated instead.
    """
    padded = image
    for axis, widths in enumerate([(top, bottom), (left, right)]):
        axis_widths = [(0, 0)] * image.ndim
        axis_widths[axis] = widths
        if padded.shape[axis] > 1:
            padded = np.pad(padded, axis_widths, mode="reflect")
        else:
            padded = np.pad(padded, axis_widths, mode="edge")
    return padded


def pre_pad_image(image: npt.NDArray[np.uint8], pre_pad: int) -> npt.NDArray[np.uint8]:
    """Reflect `pre_pad` pixels on the bottom and right, as upstream does against border artefacts.

    The extra rows and columns are cropped off the output again.
    """
    if pre_pad == 0:
        return image
    return pad_reflect(image, 0, pre_pad, 0, pre_pad)


def cut_tiles(
    image: npt.NDArray[np.uint8], plans: list[TilePlan], tile: int, pad: int
) -> npt.NDArray[np.uint8]:
    """Cut every planned window out of `image` as one N×S×S×C array, S = tile + 2·pad."""
    if not plans:
        raise ValueError("no tiles planned")
    size = window_size(tile, pad)
    # Pad once, just enough that every window lies inside the padded array.
    top = max(0, -min(p.window_top for p in plans))
    left = max(0, -min(p.window_left for p in plans))
    bottom = max(0, max(p.window_top for p in plans) + size - image.shape[0])
    right = max(0, max(p.window_left for p in plans) + size - image.shape[1])
    padded = pad_reflect(image, top, bottom, left, right)
    windows = []
    for plan in plans:
        y, x = plan.window_top + top, plan.window_left + left
        windows.append(padded[y : y + size, x : x + size])
    return np.stack(windows)


def place_tiles(
    output: npt.NDArray[np.uint8],
    tiles: npt.NDArray[np.uint8],
    plans: list[TilePlan],
    scale: int,
) -> None:
    """Write each upscaled tile's core into `output`, clipped to its bounds.

    Clipping lets `output` be the final (un-pre-padded) size, so cores that fall into the
    pre-pad border are simply dropped.
    """
    if len(tiles) != len(plans):
        raise ValueError(f"{len(tiles)} tiles for {len(plans)} plans")
    out_h, out_w = output.shape[:2]
    for upscaled, plan in zip(tiles, plans, strict=True):
        y0, x0 = plan.top * scale, plan.left * scale
        y1 = min((plan.top + plan.height) * scale, out_h)
        x1 = min((plan.left + plan.width) * scale, out_w)
        if y1 <= y0 or x1 <= x0:
            continue
        offset_y, offset_x = (o * scale for o in plan.core_offset)
        output[y0:y1, x0:x1] = upscaled[
            offset_y : offset_y + y1 - y0, offset_x : offset_x + x1 - x0
        ]


def stitch_tiles(
    outputs: npt.NDArray[np.uint8],
    plans: list[TilePlan],
    scale: int,
    out_h: int,
    out_w: int,
) -> npt.NDArray[np.uint8]:
    """Assemble upscaled tiles into a fresh out_h×out_w image (cores beyond it are dropped)."""
    output = np.zeros((out_h, out_w, *outputs.shape[3:]), dtype=np.uint8)
    place_tiles(output, outputs, plans, scale)
    return output
