"""A photo of any size → the 384×384 uint8 RGB input of `blip_vision` (through `caption_blip`),
exactly as transformers' BlipImageProcessor prepares it before its rescale and normalisation
(which run inside the graph): resized straight to 384×384 with PIL's bicubic filter, the
aspect ratio not kept, nothing cropped.

tests/unit/test_blip_image.py checks it against BlipImageProcessor's PIL backend (transformers
5.23, `BlipImageProcessorPil`; its default backend needs torchvision, which the gateway does not
install): the same bytes. No torch, no transformers here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

BLIP_SIZE = 384
Rgb = npt.NDArray[np.uint8]


def to_blip_input(rgb: Rgb, size: int = BLIP_SIZE) -> Rgb:
    """An RGB uint8 [H, W, 3] photo → uint8 [size, size, 3]."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"an image of {rgb.shape[0]}×{rgb.shape[1]} pixels has nothing to resize")
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    resized = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def to_blip_batch(images: Sequence[Rgb], size: int = BLIP_SIZE) -> Rgb:
    """Several photos as one uint8 [N, size, size, 3] batch."""
    if not images:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([to_blip_input(image, size) for image in images])
