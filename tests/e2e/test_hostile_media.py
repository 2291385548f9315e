"""A hostile-media corpus, made by the test itself, sent to every upload route of one gateway.

Broken or dangerous uploads must be refused with a 4xx whose `detail` is a plain sentence;
valid-but-unusual images (CMYK, 16 bits, alpha, a palette, an animation, an EXIF rotation) must
come back right; hostile filenames are echoed only as a short plain name. Never a 5xx.
"""

from __future__ import annotations

import functools
import io
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from serving.launcher import TritonServer
from tests.e2e.conftest import Gateway, make_gateway, photo_bytes, wait_for_status
from tests.images import encode, png_chunk

pytestmark = pytest.mark.integration

Route = Literal["upscale", "restore", "metrics"]
ROUTES: tuple[Route, ...] = ("upscale", "restore", "metrics")
Pixels = npt.NDArray[np.uint8]
# What a reason shown to a client must never contain: pieces of Python reprs and tracebacks.
REPR_ARTEFACTS = ("<", " object at 0x", "Traceback", "b'", "\\x")
WIDTH, HEIGHT = 64, 48
BOUNDARY = "facet-hostile-media"
REFUSAL_SECONDS = 10.0  # generous for 2 busy CI cores; decoding the bomb would take far longer


# --- the gateway: one per module, against the Triton that also serves the face models ---------


@pytest.fixture(scope="module")
def gateway(
    face_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """start_gateway is function-scoped; this is the same process, started once per module."""
    server = make_gateway(face_triton, tmp_path_factory.mktemp("hostile_gateway"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as http:
        yield http


# --- the corpus ------------------------------------------------------------------------------


@functools.cache
def photo() -> Pixels:
    """The astronaut at 64×48: a real photo, so the face detector has something to look at."""
    return rgb_of(photo_bytes((WIDTH, HEIGHT)))


def rgb_of(data: bytes) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


def png_file(width: int, height: int, depth: int, colour_type: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed 1 KB PNG whose IHDR claims width×height RGB; the pixels are not there."""
    return png_file(width, height, 8, 2, zlib.compress(b"\0" * 1024))


@functools.cache
def png_bomb(side: int = 20_000, rows_per_block: int = 500) -> bytes:
    """A real side×side single-colour grayscale PNG: ~400 MB of pixels in ~440 KB.

    Deflating 400 MB takes seconds, so one block of rows is deflated once and repeated: each
    block ends with a full flush and so never refers back, and the zlib trailer's Adler-32 is
    computed over all the rows, which makes the stream valid to the end."""
    row = b"\0" + b"\x7f" * side  # filter byte "None", then one gray level
    rows = row * rows_per_block
    compressor = zlib.compressobj(9)
    first = compressor.compress(rows) + compressor.flush(zlib.Z_FULL_FLUSH)
    header, block = first[:2], first[2:]
    checksum = 1
    for _ in range(side // rows_per_block):
        checksum = zlib.adler32(rows, checksum)
    empty_final_block = b"\x03\x00"
    stream = (
        header + block * (side // rows_per_block) + empty_final_block + struct.pack(">I", checksum)
    )
    return png_file(side, side, 8, 0, stream)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF segment is rewritten to claim width×height."""
    data = bytearray(encode(Image.fromarray(photo()), "JPEG"))
    offset = 2
    while data[offset + 1] not in (0xC0, 0xC1, 0xC2):
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    # SOF: marker(2) length(2) precision(1) height(2) width(2)
    data[offset + 5 : offset + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif_rotated_jpeg() -> tuple[bytes, Pixels]:
    """A JPEG stored 64 wide × 48 tall with Orientation 6: upright it is 48 wide × 64 tall."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(Image.fromarray(photo()), "JPEG", exif=exif, quality=95)
    stored = rgb_of(data)  # Pillow's convert ignores the tag: the pixels as stored
    return data, np.ascontiguousarray(np.rot90(stored, k=-1))


def animated_webp() -> tuple[bytes, Pixels]:
    """Two lossless frames, the photo then its negative: only the first frame may come back."""
    first, second = Image.fromarray(photo()), Image.fromarray(255 - photo())
    data = encode(first, "WEBP", save_all=True, append_images=[second], lossless=True)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    return data, photo()


def cmyk_jpeg() -> tuple[bytes, Pixels]:
    data = encode(Image.fromarray(photo()).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    return data, rgb_of(data)


def gray16_png() -> tuple[bytes, Pixels]:
    """I;16: each 8-bit level v stored as v·257, so v is the one right 8-bit answer."""
    gray = photo()[..., 1]
    data = encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    return data, np.repeat(gray[..., None], 3, axis=2)


def rgb48_png() -> tuple[bytes, Pixels]:
    """16 bits per channel. Pillow cannot write it, OpenCV can (BGR order)."""
    ok, data = cv2.imencode(".png", (photo().astype(np.uint16) * 257)[..., ::-1])
    assert ok and data.tobytes()[24:26] == b"\x10\x02"  # IHDR: bit depth 16, colour type RGB
    return data.tobytes(), photo()


def gray_alpha_png() -> tuple[bytes, Pixels]:
    gray = photo()[..., 0]
    alpha = np.full_like(gray, 255)
    alpha[:, : WIDTH // 4] = 0
    data = encode(Image.fromarray(np.stack([gray, alpha], axis=-1), "LA"), "PNG")
    return data, np.repeat(gray[..., None], 3, axis=2)


def palette_trns_png() -> tuple[bytes, Pixels]:
    palette = Image.fromarray(photo()).quantize(colors=16)
    data = encode(palette, "PNG", transparency=0)
    assert "transparency" in Image.open(io.BytesIO(data)).info
    return data, np.asarray(palette.convert("RGB"), dtype=np.uint8)


def plain_png() -> bytes:
    return encode(Image.fromarray(photo()), "PNG")


def plain_jpeg() -> bytes:
    return encode(Image.fromarray(photo()), "JPEG", quality=95)


def plain_webp() -> bytes:
    return encode(Image.fromarray(photo()), "WEBP", quality=90)


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.txt", "not a picture")
    return buffer.getvalue()


HTML_PAGE = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
    b"<script>alert(1)</script><rect width='64' height='48'/></svg>"
)
PDF_FILE = b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"


@dataclass(frozen=True)
class Upload:
    """One file part: its bytes, and the name and media type a client claims for it."""

    data: bytes
    filename: bytes = b"upload.png"
    content_type: str = "image/png"


@dataclass(frozen=True)
class Odd:
    """A valid image that decoders often get wrong, and the upright 8-bit RGB it must give."""

    upload: Upload
    rgb: Pixels
    result_format: str  # what /upscale and /restore write back
    alpha: bool = False


def refused_corpus() -> dict[str, tuple[Upload, int]]:
    """Each file and the status it must get: 400 unreadable, 413 too big, 415 not an image we
    take (by its bytes: names and media types are only claims)."""
    png, jpeg, webp = plain_png(), plain_jpeg(), plain_webp()
    return {
        "truncated png (inside IDAT)": (Upload(png[: len(png) // 2]), 400),
        "truncated png (inside IHDR)": (Upload(png[:20]), 400),
        "png signature only": (Upload(png[:8]), 400),
        "truncated jpeg": (Upload(jpeg[: len(jpeg) // 2], b"a.jpg", "image/jpeg"), 400),
        "jpeg magic only": (Upload(b"\xff\xd8\xff", b"a.jpg", "image/jpeg"), 400),
        "truncated webp": (Upload(webp[: len(webp) // 2], b"a.webp", "image/webp"), 400),
        "webp riff header only": (Upload(b"RIFF\0\0\0\0WEBP", b"a.webp", "image/webp"), 400),
        "zero-byte file": (Upload(b""), 400),
        "png claiming 100000x100000": (Upload(png_claiming(100_000, 100_000)), 413),
        "jpeg sof claiming 65500x65500": (
            Upload(jpeg_claiming(65_500, 65_500), b"a.jpg", "image/jpeg"),
            413,
        ),
        "png bomb 20000x20000 in a few hundred kb": (Upload(png_bomb()), 413),
        "gif named png": (Upload(encode(Image.fromarray(photo()), "GIF")), 415),
        "svg with a script": (Upload(SVG_WITH_SCRIPT, b"a.svg", "image/svg+xml"), 415),
        "pdf named png": (Upload(PDF_FILE), 415),
        "html named jpg": (Upload(HTML_PAGE, b"a.jpg", "image/jpeg"), 415),
    }


def odd_corpus() -> dict[str, Odd]:
    png, jpeg = plain_png(), plain_jpeg()
    cases: dict[str, Odd] = {
        "png named jpg": Odd(Upload(png, b"photo.jpg", "image/jpeg"), photo(), "PNG"),
        "jpeg sent as image/png": Odd(
            Upload(jpeg, b"photo.png", "image/png"), rgb_of(jpeg), "JPEG"
        ),
    }
    data, rgb = cmyk_jpeg()
    cases["cmyk jpeg"] = Odd(Upload(data, b"cmyk.jpg", "image/jpeg"), rgb, "JPEG")
    data, rgb = gray16_png()
    cases["16-bit grayscale png (I;16)"] = Odd(Upload(data), rgb, "PNG")
    data, rgb = rgb48_png()
    cases["48-bit rgb png"] = Odd(Upload(data), rgb, "PNG")
    data, rgb = gray_alpha_png()
    cases["grayscale+alpha png"] = Odd(Upload(data), rgb, "PNG", alpha=True)
    data, rgb = palette_trns_png()
    cases["palette png with tRNS"] = Odd(Upload(data), rgb, "PNG", alpha=True)
    data, rgb = animated_webp()
    cases["animated webp (2 frames)"] = Odd(Upload(data, b"a.webp", "image/webp"), rgb, "WEBP")
    data, rgb = exif_rotated_jpeg()
    cases["exif orientation 6 jpeg"] = Odd(Upload(data, b"r.jpg", "image/jpeg"), rgb, "JPEG")
    return cases


def polyglot_corpus() -> dict[str, Odd]:
    """Files that are a valid PNG and something else. Refusing them is fine; accepting them is
    fine too when the result is the PNG's picture (results are re-encoded, so the trailing
    payload never reaches anyone)."""
    png = plain_png()
    return {
        "png with a zip appended": Odd(Upload(png + zip_archive(), b"a.png.zip"), photo(), "PNG"),
        "png with html appended": Odd(Upload(png + HTML_PAGE, b"a.html"), photo(), "PNG"),
    }


HOSTILE_FILENAMES: dict[str, bytes] = {
    "4000-character filename": b"x" * 3_996 + b".png",
    "path traversal": b"../../etc/passwd",
    "windows path traversal": b"..\\..\\windows\\win.ini",
    "absolute path": b"/etc/passwd",
    "nul character": b"photo\x00.png",
    "newline characters": b"photo\r\nX-Injected: 1.png",
    "bare newline": b"photo\nname.png",
    "control characters": b"\x07\x1b[31mred\x1b[0m.png",
    "percent-encoded nul": b"photo%00.png",
    "right-to-left override": "photo\u202egnp.exe".encode(),
}


# --- talking to the routes -------------------------------------------------------------------


def multipart(
    files: list[tuple[str, Upload]], fields: list[tuple[str, str]]
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written byte by byte, so a filename reaches the server exactly
    as given (client libraries escape quotes, NULs and newlines)."""
    parts = []
    for name, upload in files:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="'.encode()
            + upload.filename
            + f'"\r\nContent-Type: {upload.content_type}\r\n\r\n'.encode()
            + upload.data
            + b"\r\n"
        )
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{BOUNDARY}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def send(
    client: httpx.Client,
    route: Route,
    upload: Upload,
    extra_fields: list[tuple[str, str]] | None = None,
    restored: Upload | None = None,
) -> httpx.Response:
    """POST `upload` as the route's image: /upscale and /restore's `file`, /metrics' `original`
    (its `restored` a valid PNG, by default the photo one level off in one pixel)."""
    fields = list(extra_fields or [])
    if route == "upscale":
        files = [("file", upload)]
        fields = [("scale", "2"), *fields]
    elif route == "restore":
        files = [("file", upload)]
        fields = [("upscale", "1"), *fields]
    else:
        files = [("original", upload), ("restored", restored or near(photo()))]
    body, headers = multipart(files, fields)
    return client.post(f"/{route}", content=body, headers=headers)


def assert_plain_refusal(answer: httpx.Response) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    detail = answer.json().get("detail")
    assert isinstance(detail, str) and detail.strip(), answer.text
    for artefact in REPR_ARTEFACTS:
        assert artefact not in detail, (artefact, detail)


def downloaded(client: httpx.Client, url: str) -> httpx.Response:
    result = client.get(url)
    assert result.status_code == 200, (result.status_code, result.text)
    return result


def assert_image(result: httpx.Response, size: tuple[int, int], odd: Odd) -> Image.Image:
    image = Image.open(io.BytesIO(result.content))
    assert image.format == odd.result_format, (image.format, odd.result_format)
    assert image.size == size
    assert getattr(image, "n_frames", 1) == 1, "an animation came back; only its first frame may"
    assert ("A" in image.getbands()) == odd.alpha, image.mode
    orientation = image.getexif().get(0x0112)
    assert orientation in (None, 1), f"the result still says Orientation {orientation}"
    return image


def assert_processed(client: httpx.Client, route: Route, answer: httpx.Response, odd: Odd) -> None:
    """A 2xx whose result is the right picture, the right way up, at the right size."""
    assert answer.status_code == 200, (answer.status_code, answer.text)
    height, width = odd.rgb.shape[:2]
    body = answer.json()
    if route == "upscale":
        status = wait_for_status(client, body["job_id"], {"completed", "failed"})
        assert status["status"] == "completed", status
        assert_image(downloaded(client, str(status["result_url"])), (2 * width, 2 * height), odd)
    elif route == "restore":
        assert body["original_size"] == [width, height], body
        assert body["restored_size"] == [width, height], body
        assert_image(downloaded(client, body["download_url"]), (width, height), odd)
    else:
        # `restored` was the expected pixels one level off in one pixel (see `near`): a wrong
        # decode (clipped 16 bits, the second frame, no rotation) is far below this PSNR.
        assert body["resized_original"] is False and body["compared_size"] == [width, height]
        assert body["metrics"]["psnr"] > NEAR_PSNR_DB and body["metrics"]["ssim"] > 0.999, body


# One level off in one of the 64×48×3 values: ~87.9 dB. An 8-bit decode that is wrong anywhere
# visible scores far lower; identical images would report an infinite PSNR, which has its own
# test below.
NEAR_PSNR_DB = 80.0


def near(rgb: Pixels) -> Upload:
    """`rgb` as a plain PNG with one value moved by one level."""
    nudged = rgb.copy()
    nudged[0, 0, 0] = nudged[0, 0, 0] + 1 if nudged[0, 0, 0] < 255 else 254
    return Upload(encode(Image.fromarray(nudged), "PNG"), b"expected.png")


# --- the tests -------------------------------------------------------------------------------

REFUSED = refused_corpus()
ODD = odd_corpus()
POLYGLOTS = polyglot_corpus()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(REFUSED))
def test_a_broken_or_hostile_file_is_refused_with_a_plain_reason(
    client: httpx.Client, case: str, route: Route
) -> None:
    upload, status = REFUSED[case]
    answer = send(client, route, upload)
    assert_plain_refusal(answer)
    assert answer.status_code == status, (answer.status_code, answer.text)
    # Refused from the header alone: no decoding of 400 MB of pixels, no hang.
    assert answer.elapsed.total_seconds() < REFUSAL_SECONDS


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(ODD))
def test_a_valid_but_unusual_image_comes_back_right(
    client: httpx.Client, case: str, route: Route
) -> None:
    odd = ODD[case]
    restored = near(odd.rgb) if route == "metrics" else None
    assert_processed(client, route, send(client, route, odd.upload, restored=restored), odd)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(POLYGLOTS))
def test_a_polyglot_is_refused_or_treated_as_the_image_it_starts_with(
    client: httpx.Client, case: str, route: Route
) -> None:
    odd = POLYGLOTS[case]
    restored = near(odd.rgb) if route == "metrics" else None
    answer = send(client, route, odd.upload, restored=restored)
    if answer.status_code >= 300:
        assert_plain_refusal(answer)
    else:
        assert_processed(client, route, answer, odd)


def assert_plain_name(name: str) -> None:
    assert 0 < len(name) <= 255, len(name)
    assert "/" not in name and "\\" not in name, name
    control = [ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf")]
    assert not control, (name, control)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(HOSTILE_FILENAMES))
def test_a_hostile_filename_is_echoed_only_as_a_short_plain_name(
    client: httpx.Client, case: str, route: Route
) -> None:
    upload = Upload(plain_png(), HOSTILE_FILENAMES[case])
    answer = send(client, route, upload)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    body = answer.json()
    if route == "upscale":
        status = wait_for_status(client, body["job_id"], {"completed", "failed"})
        assert status["status"] == "completed", status
        assert_plain_name(str(status["original_filename"]))
        result = downloaded(client, str(status["result_url"]))
    elif route == "restore":
        result = downloaded(client, body["download_url"])
    else:
        assert body["metrics"]["psnr"] > NEAR_PSNR_DB, body
        return
    # The download's name is built from the echoed one.
    disposition = result.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition


@pytest.mark.parametrize("route", ROUTES)
def test_an_8000_character_filename_is_refused_with_the_reason(
    client: httpx.Client, route: Route
) -> None:
    """python-multipart (0.0.34) refuses a part header line over 4,224 bytes before any route
    runs; the gateway says that, in its own error body, instead of "Invalid multipart data"."""
    answer = send(client, route, Upload(plain_png(), b"y" * 7_996 + b".png"))
    assert_plain_refusal(answer)
    assert answer.status_code == 400 and answer.json()["error"] == "BadRequest"
    assert "header line is too long" in answer.json()["detail"], answer.text


def test_identical_images_get_a_null_psnr_not_a_server_error(client: httpx.Client) -> None:
    same = Upload(plain_png(), b"same.png")
    answer = send(client, "metrics", same, restored=same)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    assert answer.json()["metrics"] == {"psnr": None, "ssim": 1.0}


@pytest.mark.parametrize("route", ROUTES)
def test_a_multipart_body_with_2000_form_fields_is_refused_plainly(
    client: httpx.Client, route: Route
) -> None:
    """Starlette stops parsing at its 1,000-field limit: a 400 before the route runs."""
    extra = [(f"field{index}", "x") for index in range(2_000)]
    answer = send(client, route, Upload(plain_png()), extra_fields=extra)
    assert_plain_refusal(answer)
    assert "fields" in answer.json()["detail"] and answer.json()["error"] == "BadRequest"


def test_after_the_corpus_a_plain_upload_still_works_and_nothing_was_logged_as_a_crash(
    gateway: Gateway, client: httpx.Client
) -> None:
    job = send(client, "upscale", Upload(plain_png())).json()
    assert wait_for_status(client, job["job_id"], {"completed", "failed"})["status"] == "completed"
    log = gateway.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
