"""What the gateway does around the model, timed in-process with the gateway's own functions:
decoding the upload, encoding the result, cutting and stitching tiles, aligning and pasting
faces. These split a gateway request's time into its parts, and take the codec out of the
gateway-over-Triton overhead."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import cv2
import numpy as np

from perf.photos import Upload
from perf.realistic_results import RESTORE, UPSCALE, CaseCost
from perf.samples import Uint8Array

# Generous decode limits: the benchmark's own photos, never a hostile upload.
DECODE_LIMITS: Final[dict[str, int]] = {
    "max_bytes": 1 << 30,
    "max_pixels": 1 << 30,
    "max_side": 1 << 15,
}
NATIVE_SCALE: Final = 4


def median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        call()
        times.append(1000.0 * (time.perf_counter() - started))
    return statistics.median(times)


def decode(data: bytes) -> Any:
    from gateway.imageio import decode_image

    return decode_image(data, **DECODE_LIMITS)


def enlarged(image: Uint8Array, factor: int) -> Uint8Array:
    """Stand-in for a model's result at `factor`×: real-photo content, so encoding costs what
    encoding a result does."""
    height, width = image.shape[:2]
    size = (width * factor, height * factor)
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC))


def upscale_cost(
    upload: Upload, model: str, tile: int, pad: int, pre_pad: int, runs: int
) -> CaseCost:
    """Decode, tile cutting + stitching at the gateway's geometry, and encoding of the ×4
    result, for one upscale upload."""
    from gateway.imageio import encode_image, output_format_for
    from triton_core.tiling import place_tiles, plan_tiles, window_size
    from triton_core.upscale import UpscaleOptions, cut_padded_tiles

    decoded = decode(upload.data)
    rgb = decoded.rgb
    height, width = rgb.shape[:2]
    options = UpscaleOptions(outscale=4, tile_size=tile, tile_pad=pad, pre_pad=pre_pad)
    plans = plan_tiles(height, width, tile, pad, bounds=(height + pre_pad, width + pre_pad))
    window = window_size(tile, pad)
    native = np.empty((height * NATIVE_SCALE, width * NATIVE_SCALE, 3), dtype=np.uint8)
    result = enlarged(rgb, NATIVE_SCALE)
    fmt = output_format_for(decoded, outscale=4)

    def tiling() -> None:
        tiles = cut_padded_tiles(rgb, plans, options)
        upscaled = np.repeat(np.repeat(tiles, NATIVE_SCALE, axis=1), NATIVE_SCALE, axis=2)
        place_tiles(native, upscaled, plans, NATIVE_SCALE)

    return CaseCost(
        scenario=UPSCALE,
        model=model,
        side=max(height, width),
        upload_bytes=len(upload.data),
        image_pixels=height * width,
        model_inputs=len(plans),
        model_pixels=len(plans) * window * window,
        decode_ms=median_ms(lambda: decode(upload.data), runs),
        encode_ms=median_ms(lambda: encode_image(result, None, fmt), runs),
        decodes=2,  # the API checks the upload, the job decodes it again
        pipeline_ms=median_ms(tiling, runs),
    )


def restore_cost(
    upload: Upload, model: str, landmarks: Sequence[Any], upscale: int, runs: int
) -> CaseCost:
    """Decode, the background's Lanczos resize, face alignment + paste-back (the gateway's
    functions) for the faces found, and encoding of the `upscale`× result, for one restoration
    upload. `landmarks` are the 5-point landmarks of the faces the pipeline keeps."""
    from gateway.faces.align import FFHQ_SIZE, FFHQ_TEMPLATE_512, estimate_affine
    from gateway.faces.paste import paste_back
    from gateway.faces.restore_pipeline import crop_faces, resize_lanczos
    from gateway.imageio import encode_image, output_format_for

    decoded = decode(upload.data)
    rgb = decoded.rgb
    height, width = rgb.shape[:2]
    affines = [estimate_affine(np.asarray(points), FFHQ_TEMPLATE_512) for points in landmarks]
    size = (width * upscale, height * upscale)
    background = resize_lanczos(rgb, size)
    fmt = output_format_for(decoded, outscale=upscale)

    def align_and_paste() -> None:
        backdrop = resize_lanczos(rgb, size)
        if affines:
            crops = crop_faces(rgb, affines)
            paste_back(backdrop, crops, affines, upscale=upscale)

    return CaseCost(
        scenario=RESTORE,
        model=model,
        side=max(height, width),
        upload_bytes=len(upload.data),
        image_pixels=height * width,
        model_inputs=len(affines),
        model_pixels=len(affines) * FFHQ_SIZE * FFHQ_SIZE,
        decode_ms=median_ms(lambda: decode(upload.data), runs),
        encode_ms=median_ms(lambda: encode_image(background, None, fmt), runs),
        decodes=1,  # /restore decodes once and restores in the request
        pipeline_ms=median_ms(align_and_paste, runs),
    )
