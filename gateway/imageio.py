"""Safe image decoding and encoding for uploads.

Every limit is checked before Pillow allocates the pixel buffer: the byte size first, then the
format from magic bytes, then the dimensions from the header. Pillow's global state
(`Image.MAX_IMAGE_PIXELS`, `ImageFile.LOAD_TRUNCATED_IMAGES`, warning filters) is never changed,
so a truncated file fails instead of being silently padded with grey.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:  # the clients decode with this module too, without the gateway's settings
    from gateway.settings import Settings

ImageFormat = Literal["JPEG", "PNG", "WEBP"]

ALLOWED_FORMATS: Final = "JPEG, PNG or WebP"
MEDIA_TYPES: Final[dict[str, str]] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}
# Hard limits of the encoders: libwebp stores 14-bit dimensions, JPEG 16-bit ones.
WEBP_MAX_SIDE: Final = 16383
JPEG_MAX_SIDE: Final = 65500

_GRAYSCALE_MODES: Final = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})
_SIXTEEN_BIT_MODES: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
# Errors Pillow raises for malformed data, in the header parser or in the decoder.
_DECODE_ERRORS: Final = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
)
# A Pillow message shown to a client as is: plain words, digits and punctuation. Others (some
# embed reprs: "cannot identify image file <_io.BytesIO object at 0x…>", "chunk b'\\x00…'")
# are replaced by a generic reason.
_PLAIN_REASON: Final = re.compile(r"[A-Za-z0-9 ,.;:()%+-]{1,200}")
# warnings.catch_warnings swaps a process-wide filter list; serialising our own uses keeps two
# concurrent decodes from restoring each other's filters and leaking the "error" filter.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class DecodedImage:
    """An upload as 8-bit RGB plus an optional separate alpha plane (arrays are read-only)."""

    rgb: npt.NDArray[np.uint8]
    alpha: npt.NDArray[np.uint8] | None
    mode: str
    format: ImageFormat
    was_grayscale: bool
    icc_profile: bytes | None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int) -> DecodedImage:
    """Decode an upload, refusing anything hostile before it costs memory.

    Raises BadRequest (empty, corrupt, truncated), PayloadTooLarge (bytes, side or pixel limits)
    and UnsupportedMediaType (anything but JPEG, PNG or WebP by content).
    """
    if not data:
        raise BadRequest("empty file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file is {len(data)} bytes; the limit is {max_bytes} bytes")
    fmt = sniff_format(data)
    image = open_header(data, fmt, max_pixels=max_pixels)
    check_dimensions(image.width, image.height, max_pixels=max_pixels, max_side=max_side)
    load_pixels(image)
    image = apply_orientation(image)
    check_dimensions(image.width, image.height, max_pixels=max_pixels, max_side=max_side)
    rgb, alpha = split_rgb_alpha(image)
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        mode=image.mode,
        format=fmt,
        was_grayscale=image.mode in _GRAYSCALE_MODES,
        icc_profile=rgb_icc_profile(image),
    )


def decode_upload(data: bytes, settings: Settings) -> DecodedImage:
    """decode_image with the gateway's configured limits: one place for uploads and jobs."""
    return decode_image(
        data,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_input_pixels,
        max_side=settings.max_image_side,
    )


def sniff_format(data: bytes) -> ImageFormat:
    """Name the format from magic bytes; filenames and content types are client claims."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise UnsupportedMediaType(f"unsupported image format; upload {ALLOWED_FORMATS}")


def open_header(data: bytes, fmt: ImageFormat, *, max_pixels: int) -> Image.Image:
    """Parse only the header, with Pillow's bomb warning raised as an error in this call only."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # formats= keeps Pillow from trying every other plugin on data we did not sniff.
            return Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PayloadTooLarge(f"image exceeds the {max_pixels}-pixel limit ({error})") from error
    except _DECODE_ERRORS as error:
        raise decode_failure(error, fmt) from error


def decode_failure(error: BaseException, fmt: str) -> BadRequest:
    """The 400 for data Pillow could not read, with Pillow's reason only if it is plain words."""
    reason = str(error)
    if isinstance(error, UnidentifiedImageError) or not _PLAIN_REASON.fullmatch(reason):
        reason = f"the data is not a complete, valid {fmt} image"
    return BadRequest(f"could not decode image: {reason}")


def check_dimensions(width: int, height: int, *, max_pixels: int, max_side: int) -> None:
    if width < 1 or height < 1:
        raise BadRequest(f"image has no pixels ({width}×{height})")
    if max(width, height) > max_side:
        raise PayloadTooLarge(
            f"image is {width}×{height}; each side may be at most {max_side} pixels"
        )
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}×{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )


def load_pixels(image: Image.Image) -> None:
    """Decode the pixel data (first frame only); truncation is an error, never grey padding."""
    try:
        image.load()
    except _DECODE_ERRORS as error:
        raise decode_failure(error, image.format or "image") from error


def apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate as the EXIF Orientation tag says, so the output is upright in every viewer."""
    try:
        rotated = ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, KeyError):
        # A broken EXIF block is common in camera files; the pixels are still fine.
        return image
    return rotated if rotated is not None else image


def split_rgb_alpha(
    image: Image.Image,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
    """Normalise every supported mode to 8-bit RGB and a separate alpha plane when present."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return split_sixteen_bit_gray(image)
    if image.has_transparency_data:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        return freeze(rgba[..., :3]), freeze(rgba[..., 3])
    return freeze(np.asarray(image.convert("RGB"), dtype=np.uint8)), None


def freeze(array: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A contiguous read-only copy when needed: DecodedImage is frozen, and Triton wants C order."""
    frozen = np.ascontiguousarray(array)
    frozen.flags.writeable = False
    return frozen


def split_sixteen_bit_gray(
    image: Image.Image,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
    """Scale 16-bit gray to 8 bits by rounding v/257; Pillow's own convert clips at 255."""
    values = np.asarray(image).astype(np.int64)
    gray = np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
    rgb = freeze(np.repeat(gray[..., None], 3, axis=2))
    transparent = image.info.get("transparency")
    if not isinstance(transparent, int):
        return rgb, None
    return rgb, freeze(np.where(values == transparent, 0, 255).astype(np.uint8))


def rgb_icc_profile(image: Image.Image) -> bytes | None:
    """Keep an ICC profile only if it describes RGB data, since we hand out RGB pixels."""
    profile = image.info.get("icc_profile")
    if not isinstance(profile, bytes) or len(profile) < 20:
        return None
    # Bytes 16..20 of an ICC header name the data colour space; CMYK or GRAY profiles would
    # misdescribe the converted RGB pixels.
    return profile if profile[16:20] == b"RGB " else None


def output_format_for(decoded: DecodedImage, *, outscale: int = 1) -> ImageFormat:
    """Pick the result format: keep the upload's, but never drop alpha and never exceed a limit.

    JPEG has no alpha, so an image with alpha is written as PNG; a result too large for the
    WebP or JPEG encoder also falls back to PNG.
    """
    out_side = max(decoded.height, decoded.width) * outscale
    if decoded.format == "JPEG" and decoded.alpha is None and out_side <= JPEG_MAX_SIDE:
        return "JPEG"
    if decoded.format == "WEBP" and out_side <= WEBP_MAX_SIDE:
        return "WEBP"
    return "PNG"


def fit_alpha(
    alpha: npt.NDArray[np.uint8] | None, shape: tuple[int, ...]
) -> npt.NDArray[np.uint8] | None:
    """Resize an alpha plane (linearly) to an output of `shape` (H×W×…); None stays None."""
    if alpha is None or alpha.shape == tuple(shape[:2]):
        return alpha
    height, width = shape[:2]
    resized = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.uint8)


def media_type_for(fmt: str) -> str:
    try:
        return MEDIA_TYPES[fmt]
    except KeyError:
        raise ValueError(f"no media type for format {fmt!r}") from None


def encode_image(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8] | None,
    fmt: ImageFormat,
    *,
    quality: int = 95,
    grayscale: bool = False,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode RGB (+ alpha) as `fmt`. JPEG drops alpha; `grayscale` writes one gray channel.

    The ICC profile is embedded only for RGB output, where it matches the pixels.
    """
    check_encodable(rgb, alpha, fmt)
    image = to_pillow(rgb, None if fmt == "JPEG" else alpha, grayscale=grayscale)
    options: dict[str, object] = {}
    if icc_profile is not None and not grayscale:
        options["icc_profile"] = icc_profile
    if fmt == "JPEG":
        # 4:4:4 keeps the fine colour detail an upscaler just produced.
        options.update(quality=quality, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=quality, method=4)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def check_encodable(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8] | None, fmt: str
) -> None:
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"cannot encode format {fmt!r}; use one of {sorted(MEDIA_TYPES)}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]):
        raise ValueError(f"alpha must be H×W uint8 like rgb, got {alpha.shape} {alpha.dtype}")
    side = max(rgb.shape[:2])
    limit = {"WEBP": WEBP_MAX_SIDE, "JPEG": JPEG_MAX_SIDE}.get(fmt)
    if limit is not None and side > limit:
        raise ValueError(f"{fmt} cannot store a {side}-pixel side (limit {limit})")


def to_pillow(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8] | None, *, grayscale: bool
) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(rgb))
    if grayscale:
        image = image.convert("L")
    if alpha is not None:
        image.putalpha(Image.fromarray(np.ascontiguousarray(alpha)))
    return image
