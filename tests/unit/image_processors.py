"""What the preprocessing tests of the CLIP and BLIP sessions share: transformers' image
processors run without their rescale and normalisation (those run inside the graphs), and
photos whose every bicubic weight shows in a resize."""

from __future__ import annotations

from typing import Any

import numpy as np


def processed(processor: Any, rgb: np.ndarray) -> np.ndarray:
    """`processor`'s resized (and cropped) uint8 pixels for one HWC photo, as HWC."""
    pixels = processor(
        rgb,
        do_rescale=False,
        do_normalize=False,
        return_tensors="np",
        input_data_format="channels_last",
    )["pixel_values"][0]
    return np.asarray(pixels).transpose(1, 2, 0).astype(np.uint8)


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """Noise over a smooth gradient: every bicubic weight shows in the output."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    noisy = ramp * 0.5 + rng.integers(0, 128, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)
