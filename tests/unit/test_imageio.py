"""Upload decoding is bounded before it allocates, and encoding keeps what the format can hold."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import warnings
import zlib

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageCms, ImageFile

from gateway import imageio
from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.imageio import (
    DecodedImage,
    ImageFormat,
    decode_image,
    encode_image,
    media_type_for,
    output_format_for,
)
from tests.images import encode, png_chunk

MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 4_000_000
MAX_SIDE = 8192


def decode(data: bytes) -> DecodedImage:
    return decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)


def gradient(height: int = 48, width: int = 64) -> npt.NDArray[np.uint8]:
    """A smooth image, so lossy codecs reproduce it closely."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    return rgb.astype(np.uint8)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width×height 8-bit RGB; the pixel data is never there."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def srgb_profile() -> bytes:
    profile: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile


@pytest.mark.parametrize(("fmt", "tolerance"), [("PNG", 0.0), ("JPEG", 3.0), ("WEBP", 3.0)])
def test_each_format_round_trips_through_encode_and_decode(
    fmt: ImageFormat, tolerance: float
) -> None:
    rgb = gradient()
    decoded = decode(encode_image(rgb, None, fmt))
    assert decoded.format == fmt
    assert decoded.rgb.shape == rgb.shape and decoded.rgb.dtype == np.uint8
    assert decoded.alpha is None and not decoded.was_grayscale
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() <= tolerance


def test_an_rgba_png_keeps_its_alpha_plane_exactly() -> None:
    rgb = gradient()
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    decoded = decode(encode_image(rgb, alpha, "PNG"))
    assert decoded.mode == "RGBA"
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha, alpha)
    np.testing.assert_array_equal(decoded.rgb, rgb)


def test_a_webp_with_alpha_keeps_its_alpha_plane() -> None:
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:, :32] = 0
    decoded = decode(encode_image(gradient(), alpha, "WEBP"))
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha, alpha)


def test_a_grayscale_png_decodes_to_equal_rgb_channels_and_is_flagged() -> None:
    gray = gradient()[..., 0]
    decoded = decode(encode(Image.fromarray(gray), "PNG"))
    assert decoded.mode == "L" and decoded.was_grayscale
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[..., channel], gray)


def test_a_palette_png_with_transparency_gets_alpha_from_its_trns_entry() -> None:
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    decoded = decode(encode(image, "PNG", transparency=1))
    assert decoded.mode == "P" and not decoded.was_grayscale
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha, np.where(indices == 1, 0, 255))
    np.testing.assert_array_equal(decoded.rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(decoded.rgb[0, 2], [0, 0, 255])


def test_a_grayscale_png_with_a_transparent_value_gets_alpha() -> None:
    gray = np.array([[7, 8, 7]], np.uint8)
    decoded = decode(encode(Image.fromarray(gray), "PNG", transparency=7))
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha, [[0, 255, 0]])


def test_a_sixteen_bit_gray_png_is_rounded_to_eight_bits_not_clipped() -> None:
    values = np.array([[0, 257, 32896, 65535, 1000, 65000]], np.uint16)
    decoded = decode(encode(Image.fromarray(values), "PNG"))
    assert decoded.was_grayscale
    expected = np.round(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(decoded.rgb[..., 0], expected)
    assert decoded.alpha is None


def test_a_sixteen_bit_gray_png_keeps_its_transparent_value_as_alpha() -> None:
    values = np.array([[257, 1000, 257]], np.uint16)
    decoded = decode(encode(Image.fromarray(values), "PNG", transparency=257))
    assert decoded.alpha is not None
    np.testing.assert_array_equal(decoded.alpha, [[0, 255, 0]])


def test_a_sixteen_bit_rgb_png_is_within_one_level_of_exact_rounding() -> None:
    rgb16 = np.random.default_rng(0).integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    ok, encoded = cv2.imencode(".png", rgb16[..., ::-1])  # OpenCV writes BGR
    assert ok
    decoded = decode(encoded.tobytes())
    exact = np.round(rgb16 / 257)
    assert np.abs(decoded.rgb.astype(int) - exact).max() <= 1


def test_exif_orientation_six_is_applied_so_the_image_comes_out_upright() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall as stored
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    decoded = decode(encode(Image.fromarray(stored), "JPEG", exif=exif, quality=95))
    assert decoded.rgb.shape == (40, 20, 3)
    # Turning clockwise carries the stored left half to the top.
    assert decoded.rgb[5, 10, 0] > 200 and decoded.rgb[5, 10, 2] < 50
    assert decoded.rgb[35, 10, 2] > 200 and decoded.rgb[35, 10, 0] < 50


def test_an_rgb_icc_profile_is_kept_and_can_be_embedded_again() -> None:
    profile = srgb_profile()
    decoded = decode(encode(Image.fromarray(gradient()), "PNG", icc_profile=profile))
    assert decoded.icc_profile == profile
    encoded = encode_image(decoded.rgb, None, "JPEG", icc_profile=decoded.icc_profile)
    assert Image.open(io.BytesIO(encoded)).info.get("icc_profile") == profile


def test_a_non_rgb_icc_profile_is_dropped_because_the_pixels_become_rgb() -> None:
    profile = bytearray(srgb_profile())
    profile[16:20] = b"GRAY"
    image = Image.fromarray(gradient()[..., 0])
    decoded = decode(encode(image, "PNG", icc_profile=bytes(profile)))
    assert decoded.icc_profile is None


def test_encoding_jpeg_drops_alpha_and_grayscale_writes_one_channel() -> None:
    alpha = np.zeros((48, 64), np.uint8)
    decoded = decode(encode_image(gradient(), alpha, "JPEG"))
    assert decoded.alpha is None and decoded.mode == "RGB"
    gray = decode(encode_image(gradient(), None, "PNG", grayscale=True))
    assert gray.mode == "L"
    gray_alpha = decode(encode_image(gradient(), alpha, "PNG", grayscale=True))
    assert gray_alpha.mode == "LA" and gray_alpha.alpha is not None


def test_encoding_refuses_a_webp_side_beyond_the_format_limit() -> None:
    wide = np.zeros((1, imageio.WEBP_MAX_SIDE + 1, 3), np.uint8)
    with pytest.raises(ValueError, match="WEBP"):
        encode_image(wide, None, "WEBP")


def test_output_keeps_the_upload_format_but_never_writes_alpha_as_jpeg() -> None:
    rgb, alpha = gradient(), np.zeros((48, 64), np.uint8)
    jpeg = decode(encode_image(rgb, None, "JPEG"))
    webp = decode(encode_image(rgb, None, "WEBP"))
    webp_alpha = decode(encode_image(rgb, alpha, "WEBP"))
    png_alpha = decode(encode_image(rgb, alpha, "PNG"))
    assert output_format_for(jpeg, outscale=4) == "JPEG"
    assert output_format_for(webp, outscale=4) == "WEBP"
    assert output_format_for(webp_alpha, outscale=4) == "WEBP"
    assert output_format_for(png_alpha, outscale=4) == "PNG"
    # JPEG has no alpha channel, so a JPEG-shaped request with alpha is never JPEG.
    assert output_format_for(DecodedImage(rgb, alpha, "RGBA", "JPEG", False, None)) == "PNG"


def test_output_falls_back_to_png_when_the_result_is_too_big_for_webp() -> None:
    rgb = np.zeros((10, 5000, 3), np.uint8)
    webp = DecodedImage(rgb, None, "RGB", "WEBP", False, None)
    assert output_format_for(webp, outscale=2) == "WEBP"
    assert output_format_for(webp, outscale=4) == "PNG"


def test_media_types_name_each_output_format() -> None:
    assert media_type_for("PNG") == "image/png"
    assert media_type_for("JPEG") == "image/jpeg"
    assert media_type_for("WEBP") == "image/webp"
    with pytest.raises(ValueError):
        media_type_for("GIF")


def test_empty_bytes_are_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="empty file"):
        decode(b"")


def test_bytes_over_the_limit_are_too_large_before_anything_is_parsed() -> None:
    data = encode_image(gradient(), None, "PNG")
    with pytest.raises(PayloadTooLarge, match=f"limit is {len(data) - 1} bytes"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=MAX_PIXELS, max_side=MAX_SIDE)


def test_a_text_file_is_unsupported_whatever_it_is_called() -> None:
    with pytest.raises(UnsupportedMediaType, match="JPEG, PNG or WebP"):
        decode(b"definitely a png, says the filename\n")


def test_a_gif_is_unsupported() -> None:
    gif = encode(Image.fromarray(gradient()).convert("P"), "GIF")
    with pytest.raises(UnsupportedMediaType, match="JPEG, PNG or WebP"):
        decode(gif)


def test_a_truncated_jpeg_is_a_bad_request_and_is_never_padded_grey() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    jpeg = encode(Image.fromarray(noise), "JPEG", quality=95)
    with pytest.raises(BadRequest, match="could not decode image"):
        decode(jpeg[: len(jpeg) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_png_with_garbage_after_its_signature_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="could not decode image"):
        decode(b"\x89PNG\r\n\x1a\n" + b"\x13\x37" * 40)


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (50_000, 50_000, "4000000-pixel limit"),  # Pillow's own bomb error, re-raised as 413
        (10_000, 10_000, "4000000-pixel limit"),  # Pillow's bomb warning, made an error locally
        (3_000, 3_000, "limit is 4000000 pixels"),  # under Pillow's limit, over ours
        (9_000, 10, "at most 8192 pixels"),
    ],
)
def test_a_png_header_claiming_too_many_pixels_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int, message: str
) -> None:
    def refuse_to_load(image: Image.Image) -> None:
        raise AssertionError("pixels were decoded for an over-limit image")

    monkeypatch.setattr(imageio, "load_pixels", refuse_to_load)
    filters_before = list(warnings.filters)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooLarge, match=message):
            decode(png_claiming(width, height))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 1_000_000, f"refusing the header allocated {peak} bytes"
    assert warnings.filters == filters_before


REPR_ARTEFACTS = ("<", " object at 0x", "Traceback", "b'", "\\x")


def assert_plain(reason: str) -> None:
    assert reason.strip()
    for artefact in REPR_ARTEFACTS:
        assert artefact not in reason, (artefact, reason)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [(b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"RIFF\0\0\0\0WEBP", "WEBP")],
)
def test_magic_bytes_alone_are_refused_without_a_stream_repr_in_the_reason(
    data: bytes, fmt: str
) -> None:
    # Pillow says "cannot identify image file <_io.BytesIO object at 0x…>" here.
    with pytest.raises(BadRequest) as refused:
        decode(data)
    assert_plain(refused.value.detail)
    assert (
        refused.value.detail
        == f"could not decode image: the data is not a complete, valid {fmt} image"
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_every_truncation_of_a_small_image_is_refused_with_a_plain_reason(fmt: ImageFormat) -> None:
    data = encode_image(gradient(24, 32), None, fmt)
    for end in range(1, len(data), 7):
        try:
            decode(data[:end])
        except (BadRequest, UnsupportedMediaType) as refused:
            assert_plain(refused.detail)


def test_pillow_words_are_kept_when_plain_and_replaced_when_they_embed_a_repr() -> None:
    plain = imageio.decode_failure(
        OSError("image file is truncated (5 bytes not processed)"), "JPEG"
    )
    assert plain.detail == "could not decode image: image file is truncated (5 bytes not processed)"
    embedded = imageio.decode_failure(SyntaxError("broken PNG file (chunk b'\\x00IDA')"), "PNG")
    assert embedded.detail == "could not decode image: the data is not a complete, valid PNG image"
