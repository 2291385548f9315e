"""A photo of any size → the 224×224 uint8 RGB input of `clip_vit_b32_visual`, exactly as
transformers' CLIPImageProcessor prepares it before its rescale and normalisation (which run
inside the graph): the shortest side resized to 224 with PIL's bicubic filter, the longer side to
int(224 × long / short) (transformers' rounding down), then the centre 224² crop, its top-left
corner at ((H − 224) // 2, (W − 224) // 2).

Photos up to 4:1 are resized whole and cropped, as the processor does: the same pixels,
byte for byte. A more elongated photo would make a large intermediate image (a 10×20,000 strip
becomes 224×448,000), so only the region the crop keeps is resampled (PIL's `box`, at the
whole-image scale): the same filter over the same source pixels, its coordinates rounded
differently, which moves a few values by one level (measured: ≤ 1, on 0.01 % of them).
tests/unit/test_clip_image.py checks both against CLIPImageProcessor's PIL backend
(transformers 5.23; its default backend needs torchvision, which the gateway does not install).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

CLIP_SIZE = 224
# Beyond this ratio of the resized image's area to the crop's, only the crop is resampled.
MAX_WHOLE_RESIZE = 4
Rgb = npt.NDArray[np.uint8]


def resized_size(height: int, width: int, size: int = CLIP_SIZE) -> tuple[int, int]:
    """(height, width) after the shortest side is resized to `size`, as transformers computes
    it (get_resize_output_image_size, default_to_square=False)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"an image of {height}×{width} pixels has nothing to resize")
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (new_long, size) if width <= height else (size, new_long)


def to_clip_input(rgb: Rgb, size: int = CLIP_SIZE) -> Rgb:
    """An RGB uint8 [H, W, 3] photo → uint8 [size, size, 3], ready for the image tower."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    new_height, new_width = resized_size(height, width, size)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if new_height * new_width <= MAX_WHOLE_RESIZE * size * size:
        resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
        cropped = resized.crop((left, top, left + size, top + size))
    else:
        scale_y, scale_x = height / new_height, width / new_width
        box = (left * scale_x, top * scale_y, (left + size) * scale_x, (top + size) * scale_y)
        cropped = image.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(cropped, dtype=np.uint8)


def to_clip_batch(images: list[Rgb], size: int = CLIP_SIZE) -> Rgb:
    """Several photos as one uint8 [N, size, size, 3] batch."""
    if not images:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([to_clip_input(image, size) for image in images])
