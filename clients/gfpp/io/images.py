"""Images in and out of the `gfpp` layer. Callers hand over what the seed's users have: a file
path, or a numpy array in OpenCV's BGR order (what `cv2.imread` gives and GFPGANer takes);
`channel_order="rgb"` says an array is RGB. Inside, images are RGB uint8 as everywhere in
Facet, with an alpha channel kept aside; results go back in the caller's order.

Files are decoded with Pillow, EXIF orientation applied, as the gateway decodes uploads, so
both transports see the same pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

UInt8Array = npt.NDArray[np.uint8]
ChannelOrder = Literal["bgr", "rgb"]
ImageSource = str | os.PathLike[str] | bytes | npt.NDArray[Any]
ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA"})


@dataclass(frozen=True)
class Pixels:
    rgb: UInt8Array  # H×W×3
    alpha: UInt8Array | None  # H×W, or None for an opaque image


class ImageInput:
    """One input image, kept as it came: a file's bytes are sent to the gateway unchanged and
    decoded only when pixels are needed here; an array is encoded (PNG) only for the gateway."""

    def __init__(
        self, *, data: bytes | None = None, pixels: Pixels | None = None, name: str = "image.png"
    ) -> None:
        if data is None and pixels is None:
            raise ValueError("an image needs bytes or pixels")
        self._data = data
        self._pixels = pixels
        self.name = name
        self.path: str | None = None

    @classmethod
    def from_source(cls, source: ImageSource, channel_order: ChannelOrder = "bgr") -> ImageInput:
        if isinstance(source, np.ndarray):
            return cls(pixels=pixels_from_array(source, channel_order))
        if isinstance(source, bytes):
            return cls(data=source)
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        image = cls(data=path.read_bytes(), name=path.name)
        image.path = str(path)
        return image

    def pixels(self) -> Pixels:
        if self._pixels is None:
            assert self._data is not None
            self._pixels = decode_image(self._data)
        return self._pixels

    def encoded(self) -> bytes:
        if self._data is None:
            assert self._pixels is not None
            self._data = encode_png(self._pixels)
        return self._data


def pixels_from_array(array: npt.NDArray[Any], channel_order: ChannelOrder) -> Pixels:
    """H×W (gray), H×W×3 or H×W×4 uint8 in `channel_order` (+ alpha) → RGB and alpha."""
    image = np.asarray(array)
    if image.dtype != np.uint8:
        raise ValueError(f"images are uint8 arrays, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"an image is H×W, H×W×3 or H×W×4, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    color = image[..., :3] if channel_order == "rgb" else image[..., 2::-1]
    alpha = np.ascontiguousarray(image[..., 3]) if image.shape[2] == 4 else None
    return Pixels(np.ascontiguousarray(color), alpha)


def to_array(pixels: Pixels, channel_order: ChannelOrder) -> UInt8Array:
    """RGB (+ alpha) → one array in the caller's channel order, alpha last when present."""
    color = pixels.rgb if channel_order == "rgb" else pixels.rgb[..., ::-1]
    if pixels.alpha is None:
        return np.ascontiguousarray(color)
    return np.ascontiguousarray(np.dstack([color, pixels.alpha]))


def decode_image(data: bytes) -> Pixels:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            transparent = image.mode in ALPHA_MODES or "transparency" in image.info
            converted = np.asarray(image.convert("RGBA" if transparent else "RGB"))
    except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
        raise ValueError(f"not a readable image: {exc}") from exc
    if transparent:
        return Pixels(
            np.ascontiguousarray(converted[..., :3]), np.ascontiguousarray(converted[..., 3])
        )
    return Pixels(np.ascontiguousarray(converted), None)


def encode_png(pixels: Pixels) -> bytes:
    array = pixels.rgb if pixels.alpha is None else np.dstack([pixels.rgb, pixels.alpha])
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path: str | os.PathLike[str], pixels: Pixels) -> str:
    """Save to `path` (format from its suffix; parents created); returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    array = pixels.rgb if pixels.alpha is None else np.dstack([pixels.rgb, pixels.alpha])
    image = Image.fromarray(array)
    if image.mode == "RGBA" and target.suffix.lower() in (".jpg", ".jpeg"):
        image = image.convert("RGB")  # JPEG has no alpha
    image.save(target)
    return str(target)
