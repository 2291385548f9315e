"""Real-ESRGAN-style tiled upscaling of one image through a batched tile session (e.g. Triton):
the one pipeline the gateway and the user-facing gRPC client share. Its failures are its own
(`UpscaleCancelled`, `ModelAnswerError`); each side turns them into its own errors."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from triton_core.batching import batch_slices
from triton_core.tiling import (
    TilePlan,
    cut_tiles,
    place_tiles,
    plan_tiles,
    pre_pad_image,
)

T = TypeVar("T")
ALLOWED_OUTSCALES: Final = (2, 4)
NATIVE_SCALE: Final = 4  # every served Real-ESRGAN network upscales ×4
# Two batches in flight let the server batch one while the gateway stitches the other, without
# one job flooding a shared queue.
MAX_BATCHES_IN_FLIGHT: Final = 2


class UpscaleCancelled(Exception):
    """`is_cancelled` said so between two batches."""


class ModelAnswerError(ValueError):
    """The tile session answered with the wrong shape or dtype."""


# Either plain or async: a server's callbacks touch a job store, which must not block its loop.
ProgressCallback = Callable[[float], Awaitable[None] | None]
CancelCheck = Callable[[], bool | Awaitable[bool]]


class TileUpscaler(Protocol):
    """A model session that upscales equal-shaped RGB tiles by its native factor."""

    @property
    def scale(self) -> int: ...

    async def batch_limit(self) -> int:
        """The most tiles one call takes (for Triton: the model config's max_batch_size)."""
        ...

    async def upscale_tiles(self, tiles: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """N×h×w×3 uint8 RGB in, N×(h·scale)×(w·scale)×3 uint8 RGB out."""
        ...


@dataclass(frozen=True)
class UpscaleOptions:
    outscale: int = 4
    tile_size: int = 128
    tile_pad: int = 10
    pre_pad: int = 10

    def __post_init__(self) -> None:
        if self.outscale not in ALLOWED_OUTSCALES:
            raise ValueError(f"outscale must be one of {ALLOWED_OUTSCALES}, got {self.outscale}")
        if self.tile_size < 1:
            raise ValueError("tile_size must be at least 1")
        if self.tile_pad < 0 or self.pre_pad < 0:
            raise ValueError("tile_pad and pre_pad must not be negative")


async def upscale_image(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8] | None,
    session: TileUpscaler,
    options: UpscaleOptions,
    *,
    on_progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
    """Upscale H×W×3 RGB (and an optional H×W alpha) to outscale·H × outscale·W.

    Progress goes 0..1 after each batch; `is_cancelled` is polled between batches and a True
    answer raises UpscaleCancelled; a wrong answer from the session raises ModelAnswerError.
    Grayscale images arrive (and are upscaled) as RGB.
    """
    check_inputs(rgb, alpha, session.scale, options.outscale)
    height, width = rgb.shape[:2]
    pre_padded = (height + options.pre_pad, width + options.pre_pad)
    plans = plan_tiles(height, width, options.tile_size, options.tile_pad, bounds=pre_padded)
    # Copies of image size run in a thread so the event loop keeps serving other requests.
    tiles = await asyncio.to_thread(cut_padded_tiles, rgb, plans, options)
    native = np.empty((height * session.scale, width * session.scale, 3), dtype=np.uint8)
    await upscale_batches(
        tiles,
        plans,
        session,
        native,
        await session.batch_limit(),
        on_progress=on_progress,
        is_cancelled=is_cancelled,
    )
    size = (width * options.outscale, height * options.outscale)  # cv2 wants (width, height)
    rgb_out = native
    if options.outscale != session.scale:
        # Upstream's --outscale resizes the native output with INTER_LANCZOS4; area averaging
        # is the alias-free choice for shrinking, so we use it.
        rgb_out = await asyncio.to_thread(resize, native, size, cv2.INTER_AREA)
    # Upstream can also run alpha through the model as a gray image; a linear resize is
    # upstream's cheaper option and costs no extra model time, so we resize it.
    alpha_out = None
    if alpha is not None:
        alpha_out = await asyncio.to_thread(resize, alpha, size, cv2.INTER_LINEAR)
    return rgb_out, alpha_out


def check_inputs(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8] | None,
    scale: int,
    outscale: int,
) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]):
        raise ValueError(f"alpha must be H×W uint8 like rgb, got {alpha.shape} {alpha.dtype}")
    if outscale > scale:
        raise ValueError(f"outscale {outscale} exceeds the model's native ×{scale}")


def cut_padded_tiles(
    rgb: npt.NDArray[np.uint8], plans: list[TilePlan], options: UpscaleOptions
) -> npt.NDArray[np.uint8]:
    padded = pre_pad_image(rgb, options.pre_pad)
    return cut_tiles(padded, plans, options.tile_size, options.tile_pad)


def resize(
    image: npt.NDArray[np.uint8], size: tuple[int, int], interpolation: int
) -> npt.NDArray[np.uint8]:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)


async def upscale_batches(
    tiles: npt.NDArray[np.uint8],
    plans: list[TilePlan],
    session: TileUpscaler,
    output: npt.NDArray[np.uint8],
    batch_size: int,
    *,
    on_progress: ProgressCallback | None,
    is_cancelled: CancelCheck | None,
) -> None:
    """Send tiles in batches, at most MAX_BATCHES_IN_FLIGHT at once, placing results in order."""
    pending = deque(batch_slices(len(tiles), batch_size))
    in_flight: deque[tuple[asyncio.Task[npt.NDArray[np.uint8]], slice]] = deque()
    done = 0
    try:
        while pending or in_flight:
            if is_cancelled is not None and await _resolved(is_cancelled()):
                raise UpscaleCancelled("upscale cancelled")
            if pending and len(in_flight) < MAX_BATCHES_IN_FLIGHT:
                batch = pending.popleft()
                in_flight.append((asyncio.create_task(session.upscale_tiles(tiles[batch])), batch))
                continue
            task, batch = in_flight.popleft()
            upscaled = await task
            check_batch_output(upscaled, tiles[batch], session.scale)
            place_tiles(output, upscaled, plans[batch], session.scale)
            done += len(upscaled)
            if on_progress is not None:
                await _resolved(on_progress(done / len(tiles)))
    finally:
        await cancel_all([task for task, _ in in_flight])


def check_batch_output(
    upscaled: npt.NDArray[np.uint8], sent: npt.NDArray[np.uint8], scale: int
) -> None:
    count, size = sent.shape[0], sent.shape[1]
    expected = (count, size * scale, size * scale, 3)
    if upscaled.shape != expected or upscaled.dtype != np.uint8:
        raise ModelAnswerError(
            f"model returned {upscaled.shape} {upscaled.dtype}; expected {expected} uint8"
        )


async def _resolved(value: T | Awaitable[T]) -> T:
    return await value if inspect.isawaitable(value) else value


async def cancel_all(tasks: list[asyncio.Task[npt.NDArray[np.uint8]]]) -> None:
    """Cancel batches still running after a failure and wait, so no task outlives the job."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
