"""The shared tiled-upscale pipeline (`triton_core.upscale`) as the gateway runs it: options from
the settings, and the pipeline's own failures as gateway errors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.errors import JobCancelled, UpstreamError
from gateway.settings import Settings
from triton_core import upscale as core
from triton_core.upscale import (
    CancelCheck,
    ProgressCallback,
    TileUpscaler,
    UpscaleOptions,
)

__all__ = ["TileUpscaler", "UpscaleOptions", "upscale_image", "upscale_options"]

Image = npt.NDArray[np.uint8]


def upscale_options(settings: Settings, *, outscale: int) -> UpscaleOptions:
    """The tile geometry the gateway is configured with, for one output scale."""
    return UpscaleOptions(
        outscale=outscale,
        tile_size=settings.tile_size,
        tile_pad=settings.tile_pad,
        pre_pad=settings.pre_pad,
    )


async def upscale_image(
    rgb: Image,
    alpha: Image | None,
    session: TileUpscaler,
    options: UpscaleOptions,
    *,
    on_progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> tuple[Image, Image | None]:
    """`triton_core.upscale.upscale_image`, raising JobCancelled and UpstreamError (502)."""
    try:
        return await core.upscale_image(
            rgb, alpha, session, options, on_progress=on_progress, is_cancelled=is_cancelled
        )
    except core.UpscaleCancelled as exc:
        raise JobCancelled(str(exc)) from exc
    except core.ModelAnswerError as exc:
        raise UpstreamError(str(exc)) from exc
