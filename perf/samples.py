"""Benchmark inputs cut from a real photo (scikit-image's astronaut, shipped with the package).

Random noise is the wrong input for image models: real texture is what they are judged on, and
a JPEG of noise is far larger (and slower to code) than one of a photo.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image
from skimage import data

Uint8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
PHOTO_SIDE = 512


def photo() -> Uint8Array:
    """The 512×512 RGB astronaut photo (public domain, NASA)."""
    return np.ascontiguousarray(data.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]


def photo_tiles(count: int, size: int) -> Uint8Array:
    """`count` distinct size×size RGB tiles (N×S×S×3 uint8) on a grid over the photo."""
    if not 1 <= size <= PHOTO_SIDE:
        raise ValueError(f"tile size must be within 1..{PHOTO_SIDE}, got {size}")
    image = photo()
    per_side = PHOTO_SIDE // size
    corners = [(row * size, col * size) for row in range(per_side) for col in range(per_side)]
    # Spread the picks over the grid so neighbouring requests do not share content.
    step = max(1, len(corners) // count)
    picks = [corners[(n * step) % len(corners)] for n in range(count)]
    return np.stack([image[y : y + size, x : x + size] for y, x in picks])


def to_nchw_float(tiles: Uint8Array) -> FloatArray:
    """N×H×W×3 uint8 → N×3×H×W float32 in [0, 1]: what the float SR models take."""
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def photo_image(side: int) -> Uint8Array:
    """The whole photo shrunk (area averaging) to side×side: one upload's content."""
    resized = cv2.resize(photo(), (side, side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized, dtype=np.uint8)


def encode(image: Uint8Array, fmt: str = "JPEG", quality: int = 95) -> bytes:
    """Encode an RGB array as a client would upload it."""
    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def perf_analyzer_json(name: str, tensors: npt.NDArray[Any]) -> dict[str, Any]:
    """perf_analyzer's `--input-data` JSON: one entry per request, raw bytes as base64, and the
    per-request shape (the batch dimension excluded) for the model's variable dimensions."""
    entries = [
        {
            name: {
                "b64": base64.b64encode(np.ascontiguousarray(tensor).tobytes()).decode("ascii"),
                "shape": [int(dim) for dim in tensor.shape],
            }
        }
        for tensor in tensors
    ]
    return {"data": entries}


def write_perf_analyzer_json(path: Path, name: str, tensors: npt.NDArray[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(perf_analyzer_json(name, tensors)))
    return path
