"""A hostile sweep of the FaceFusion-compatible face-swap API (/process/image, /process/video,
/download/{name}, /output/{filename}) against one real stack: tiny synthetic swap models, the
real MTCNN detector, one gateway for the module.

Bad input gets a 4xx whose `detail` is a plain sentence, never a 5xx; size limits hold on the
wire (chunked bodies too); overload is a 503 with Retry-After; names a client sends stay names;
and after every refusal the outputs already stored still download and the uploads folder is
empty. No face data (embeddings, image bytes) reaches the log or a response.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.responses import Response
from starlette.types import Message

from serving.launcher import TritonServer
from tests.e2e.conftest import (
    Gateway,
    astronaut_png,
    group_photo_png,
    make_gateway,
    photo_bytes,
    wait_for_status,
)
from tests.e2e.test_hostile_media import (
    BOUNDARY,
    Upload,
    assert_plain_refusal,
    multipart,
    png_claiming,
)
from tests.e2e.test_swap_video_api import face_frames
from tests.images import encode
from tests.videos import write_video

pytestmark = pytest.mark.integration

MB = 1024 * 1024
IMAGE_LIMIT = 1 * MB  # max_upload_bytes of this module's gateway
VIDEO_LIMIT = 1 * MB  # video_max_bytes
SWAP = json.dumps({"processors": ["face_swapper"]})
# A logged face embedding would be a long run of floats; a logged image, a long base64 run.
FLOAT_RUN = re.compile(r"(?:-?\d+\.\d+(?:e-?\d+)?,\s*){15,}-?\d+\.\d+")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")


# --- the stack -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    swap_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway with small limits, one face-processing slot and room for one job."""
    server = make_gateway(
        swap_triton,
        tmp_path_factory.mktemp("swap_hostile"),
        max_upload_bytes=IMAGE_LIMIT,
        video_max_bytes=VIDEO_LIMIT,
        restore_concurrency=1,
        max_pending_jobs=1,
        job_workers=1,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=120) as http:
        yield http


@dataclass(frozen=True)
class Stored:
    """What the gateway holds before the sweep: a swap output, a restoration, an upscale
    result, a finished /process/video job; each must survive every refusal."""

    output: str
    output_bytes: bytes
    restoration_id: str
    restoration_bytes: bytes
    upscale_job_id: str
    upscale_result_id: str
    video_job_id: str


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """24 frames of the astronaut's face at 12 fps with a tone: ~2 s, well under 1 MB."""
    path = tmp_path_factory.mktemp("swap_hostile_videos") / "clip.mp4"
    write_video(path, face_frames(24, side=128), fps=12)
    data = path.read_bytes()
    assert len(data) < VIDEO_LIMIT // 4
    return data


@pytest.fixture(scope="module")
def stored(client: httpx.Client, clip: bytes) -> Stored:
    swapped = post(client, "image", target=png(astronaut_png()), source=png(astronaut_png()))
    assert swapped.status_code == 200, swapped.text
    output = name_of(swapped)
    body, headers = multipart([("file", png(astronaut_png(128)))], [("upscale", "1")])
    restored = client.post("/restore", content=body, headers=headers)
    assert restored.status_code == 200, restored.text
    restoration_id = restored.json()["restoration_id"]
    body, headers = multipart([("file", png(photo_bytes((32, 32))))], [("scale", "2")])
    upscale = client.post("/upscale", content=body, headers=headers).json()
    done = wait_for_status(client, upscale["job_id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    video = post(client, "video", target=mp4(clip), source=png(astronaut_png()), request=ASYNC)
    assert video.status_code == 200, video.text
    finished = wait_for_status(client, video.json()["job_id"], {"completed", "failed"}, 120)
    assert finished["status"] == "completed", finished
    return Stored(
        output=output,
        output_bytes=downloaded(client, f"/download/{output}"),
        restoration_id=restoration_id,
        restoration_bytes=downloaded(client, f"/download/{restoration_id}"),
        upscale_job_id=upscale["job_id"],
        upscale_result_id=str(done["result_url"]).rsplit("/", 1)[-1],
        video_job_id=video.json()["job_id"],
    )


ASYNC = json.dumps({"processors": ["face_swapper"], "async": True})
ENHANCE = json.dumps({"processors": ["face_enhancer"]})


# --- building and sending requests -----------------------------------------------------------


def png(data: bytes, name: bytes = b"photo.png") -> Upload:
    return Upload(data, name, "image/png")


def jpeg(data: bytes, name: bytes = b"photo.jpg") -> Upload:
    return Upload(data, name, "image/jpeg")


def mp4(data: bytes, name: bytes = b"clip.mp4") -> Upload:
    return Upload(data, name, "video/mp4")


def post(
    client: httpx.Client,
    route: str,
    *,
    target: Upload | None = None,
    source: Upload | None = None,
    request: str | None = SWAP,
    extra_files: list[tuple[str, Upload]] | None = None,
    extra_fields: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """POST /process/{route} as the seed's curl example does: `target`, `source`, `request`."""
    files = [(name, upload) for name, upload in (("target", target), ("source", source)) if upload]
    fields = [("request", request)] if request is not None else []
    body, headers = multipart(files + (extra_files or []), fields + (extra_fields or []))
    return client.post(f"/process/{route}", content=body, headers=headers)


def name_of(answer: httpx.Response) -> str:
    return str(answer.json()["output_path"]).rsplit("/", 1)[-1]


def downloaded(client: httpx.Client, url: str) -> bytes:
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code, answer.text)
    return answer.content


def uploads_of(gateway: Gateway) -> list[Path]:
    assert gateway.settings.data_dir is not None
    folder = gateway.settings.data_dir / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def results_of(gateway: Gateway) -> list[Path]:
    assert gateway.settings.data_dir is not None
    return sorted((gateway.settings.data_dir / "results").iterdir())


def assert_nothing_lost(client: httpx.Client, gateway: Gateway, stored: Stored) -> None:
    """The stored outputs still download unchanged, the jobs still answer, and no upload was
    left behind (no job of this module runs between tests)."""
    assert downloaded(client, f"/download/{stored.output}") == stored.output_bytes
    assert downloaded(client, f"/download/{stored.restoration_id}") == stored.restoration_bytes
    downloaded(client, f"/results/{stored.upscale_result_id}")
    status = client.get(f"/status/{stored.video_job_id}").json()
    assert status["status"] == "completed", status
    downloaded(client, str(status["result_url"]))
    assert uploads_of(gateway) == []
    assert not [p for p in results_of(gateway) if p.name.endswith(".part")]


def assert_refused(answer: httpx.Response, status: int, *words: str) -> None:
    """`status` with a short plain reason holding `words` (a 503 too: assert_plain_refusal
    checks the reason of a 4xx)."""
    if status >= 500:
        plain = httpx.Response(400, headers=answer.headers, content=answer.content)
        assert_plain_refusal(plain)
    else:
        assert_plain_refusal(answer)
    assert answer.status_code == status, (answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert len(detail) < 600, f"a {len(detail)}-character reason: {detail[:200]}…"
    for word in words:
        assert word in detail, (word, detail)


def deeply_nested(depth: int) -> str:
    return '{"processors":' + "[" * depth + "]" * depth + "}"


# --- the request field -----------------------------------------------------------------------

# Each `request` and the words its 400 must contain.
HOSTILE_REQUESTS: dict[str, tuple[str, str]] = {
    "just over 1 MB of JSON": (
        json.dumps({"processors": ["face_swapper"], "pad": "x" * MB}),
        "exceeded maximum size",
    ),
    "just under 1 MB of JSON": (
        json.dumps({"processors": ["face_swapper"], "pad": "x" * (MB - 100)}),
        "pad: Extra inputs are not permitted",
    ),
    "arrays nested 100000 deep": (deeply_nested(100_000), "nested too deeply"),
    "objects nested 100000 deep": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "a 5000-digit integer": ('{"reference_frame_number":' + "9" * 5_000 + "}", "digits"),
    "wrong types": (
        '{"processors":[1],"execution_thread_count":"many","async":"perhaps"}',
        "processors.0: Input should be a valid string",
    ),
    "NaN": ('{"face_detector_score": NaN}', "NaN is not a JSON number"),
    "Infinity": ('{"output_video_fps": Infinity}', "Infinity"),
    "minus Infinity": ('{"face_swapper_weight": -Infinity}', "Infinity"),
    "an unknown field": ('{"face_swapper_model":"inswapper_128"}', "face_swapper_model"),
    "an unknown field with a 100000-character name": (
        '{"' + "k" * 100_000 + '": 1}',
        "Extra inputs are not permitted",
    ),
    "processors as a string": ('{"processors":"face_swapper"}', "processors: Input should be"),
    "10k copies of one processor": (
        json.dumps({"processors": ["face_swapper"] * 10_000}),
        "named once",
    ),
    "10k unknown processors": (
        json.dumps({"processors": [f"p{i}" for i in range(10_000)]}),
        "unknown processor",
    ),
    "no processors": ('{"processors":[]}', "processors"),
    "execution_thread_count 0": ('{"execution_thread_count":0}', "execution_thread_count"),
    "execution_thread_count 33": ('{"execution_thread_count":33}', "execution_thread_count"),
    "output_video_fps 0": ('{"output_video_fps":0}', "output_video_fps"),
    "output_video_fps -1": ('{"output_video_fps":-1}', "output_video_fps"),
    "output_video_fps 1e9": ('{"output_video_fps":1e9}', "output_video_fps"),
    "output_video_fps 1e999 (overflows to infinity)": (
        '{"output_video_fps":1e999}',
        "output_video_fps",
    ),
    "face_swapper_pixel_boost 300": (
        '{"face_swapper_pixel_boost":300}',
        "face_swapper_pixel_boost",
    ),
    "a JSON array instead of an object": ('["face_swapper"]', "JSON object"),
    "not JSON at all": ("processors=face_swapper", "not valid JSON"),
}


@pytest.mark.parametrize("route", ["image", "video"])
@pytest.mark.parametrize("case", list(HOSTILE_REQUESTS))
def test_a_hostile_request_field_is_a_400_with_the_reason_and_nothing_is_lost(
    client: httpx.Client, gateway: Gateway, stored: Stored, clip: bytes, route: str, case: str
) -> None:
    text, words = HOSTILE_REQUESTS[case]
    target = png(astronaut_png()) if route == "image" else mp4(clip)
    answer = post(client, route, target=target, source=png(astronaut_png()), request=text)
    assert_refused(answer, 400, words)
    assert_nothing_lost(client, gateway, stored)


def test_a_request_sent_as_a_file_part_is_a_400(
    client: httpx.Client, gateway: Gateway, stored: Stored
) -> None:
    extra = [("request", Upload(SWAP.encode(), b"request.json", "application/json"))]
    answer = post(
        client,
        "image",
        target=png(astronaut_png()),
        source=png(astronaut_png()),
        request=None,
        extra_files=extra,
    )
    assert_refused(answer, 400, "request")
    assert_nothing_lost(client, gateway, stored)


def test_reference_face_position_10_on_a_one_face_photo_is_a_400(
    client: httpx.Client, gateway: Gateway, stored: Stored, clip: bytes
) -> None:
    request = json.dumps(
        {
            "processors": ["face_swapper"],
            "face_selector_mode": "reference",
            "reference_face_position": 10,
        }
    )
    image = post(
        client, "image", target=png(astronaut_png()), source=png(astronaut_png()), request=request
    )
    assert_refused(image, 400, "reference_face_position 10", "1 usable face")
    video = post(client, "video", target=mp4(clip), source=png(astronaut_png()), request=request)
    assert_refused(video, 400, "reference_face_position 10")
    assert_nothing_lost(client, gateway, stored)


def test_an_async_video_job_with_a_bad_reference_fails_with_the_reason_and_leaves_no_upload(
    client: httpx.Client, gateway: Gateway, stored: Stored, clip: bytes
) -> None:
    request = json.dumps(
        {"face_selector_mode": "reference", "reference_face_position": 10, "async": True}
    )
    answer = post(client, "video", target=mp4(clip), source=png(astronaut_png()), request=request)
    assert answer.status_code == 200, answer.text
    status = wait_for_status(client, answer.json()["job_id"], {"completed", "failed"})
    assert status["status"] == "failed", status
    assert "reference_face_position 10" in str(status["error"]), status
    assert_nothing_lost(client, gateway, stored)


# --- the files -------------------------------------------------------------------------------


def astronaut_jpeg(size: int = 256, mode: str = "RGB") -> bytes:
    return photo_bytes((size, size), fmt="JPEG", mode=mode)


def rgb48_astronaut() -> bytes:
    rgb = np.asarray(Image.open(io.BytesIO(astronaut_png())).convert("RGB"))
    ok, data = cv2.imencode(".png", (rgb.astype(np.uint16) * 257)[..., ::-1])
    assert ok and data.tobytes()[24:26] == b"\x10\x02"  # IHDR: 16 bits, RGB
    return data.tobytes()


def gray16_astronaut() -> bytes:
    gray = np.asarray(Image.open(io.BytesIO(astronaut_png())).convert("L"))
    data = encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    return data


def animated(fmt: str) -> bytes:
    first = Image.open(io.BytesIO(astronaut_png())).convert("RGB")
    second = Image.fromarray(255 - np.asarray(first))
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(first, fmt, save_all=True, append_images=[second], **options)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    return data


def grey_png() -> bytes:
    return encode(Image.new("RGB", (128, 128), (120, 120, 120)), "PNG")


def refused_files(clip: bytes) -> dict[str, tuple[dict[str, Upload | None], int, str]]:
    """Each (target, source) pair, the status it must get and a word of its reason."""
    face = png(astronaut_png())
    cut = astronaut_jpeg()
    return {
        "no target": ({"target": None, "source": face}, 400, "target"),
        "an empty target": ({"target": png(b""), "source": face}, 400, "empty"),
        "a text file as target": (
            {"target": Upload(b"hello, not a photo\n" * 20, b"a.png", "image/png"), "source": face},
            415,
            "unsupported image format",
        ),
        "a png declaring 30000x30000 in 1 kB": (
            {"target": png(png_claiming(30_000, 30_000)), "source": face},
            413,
            "pixel",
        ),
        "a truncated jpeg": ({"target": jpeg(cut[: len(cut) // 2]), "source": face}, 400, "decode"),
        "an animated gif": (
            {"target": Upload(animated("GIF"), b"a.gif", "image/gif"), "source": face},
            415,
            "JPEG, PNG or WebP",
        ),
        "a video as source": ({"target": face, "source": mp4(clip)}, 415, "unsupported"),
        "an empty source": ({"target": face, "source": png(b"")}, 400, "empty"),
        "a source with no face": ({"target": face, "source": png(grey_png())}, 400, "no face"),
        "a 30000x30000 source": (
            {"target": face, "source": png(png_claiming(30_000, 30_000))},
            413,
            "pixel",
        ),
    }


@pytest.fixture(scope="module")
def refused(clip: bytes) -> dict[str, tuple[dict[str, Upload | None], int, str]]:
    return refused_files(clip)


REFUSED_FILE_CASES = list(refused_files(b"\0").keys())


@pytest.mark.parametrize("case", REFUSED_FILE_CASES)
def test_a_broken_or_hostile_image_upload_is_refused_plainly_and_nothing_is_lost(
    client: httpx.Client, gateway: Gateway, stored: Stored, refused: dict, case: str
) -> None:
    files, status, word = refused[case]
    answer = post(client, "image", target=files["target"], source=files["source"])
    assert_refused(answer, status, word)
    assert answer.elapsed.total_seconds() < 10
    assert_nothing_lost(client, gateway, stored)


def test_a_target_sent_as_a_text_field_is_a_plain_400(
    client: httpx.Client, gateway: Gateway, stored: Stored
) -> None:
    answer = post(
        client,
        "image",
        source=png(astronaut_png()),
        extra_fields=[("target", "iVBORw0KGgo=")],
    )
    assert_refused(answer, 400, "target: must be a file")
    assert_nothing_lost(client, gateway, stored)


# Valid images decoders get wrong, as target or as source: the swap runs on the one face, and
# the result comes back in the target's format, one frame.
UNUSUAL: dict[str, tuple[Callable[[], Upload], str]] = {
    "48-bit rgb png": (lambda: png(rgb48_astronaut()), "PNG"),
    "16-bit grayscale png": (lambda: png(gray16_astronaut()), "PNG"),
    "cmyk jpeg": (lambda: jpeg(astronaut_jpeg(mode="CMYK")), "JPEG"),
    "animated webp": (lambda: Upload(animated("WEBP"), b"a.webp", "image/webp"), "WEBP"),
}


@pytest.mark.parametrize("role", ["target", "source"])
@pytest.mark.parametrize("case", list(UNUSUAL))
def test_an_unusual_but_valid_image_is_swapped(
    client: httpx.Client, gateway: Gateway, stored: Stored, case: str, role: str
) -> None:
    make, fmt = UNUSUAL[case]
    if role == "target":
        answer = post(client, "image", target=make(), source=png(astronaut_png()))
    else:
        answer = post(client, "image", target=png(astronaut_png()), source=make())
        fmt = "PNG"
    assert answer.status_code == 200, answer.text
    assert answer.json()["faces_processed"] == 1, answer.json()
    result = Image.open(io.BytesIO(downloaded(client, f"/download/{name_of(answer)}")))
    assert result.format == fmt and result.size == (256, 256)
    assert getattr(result, "n_frames", 1) == 1
    assert client.delete(f"/output/{name_of(answer)}").status_code == 200
    assert_nothing_lost(client, gateway, stored)


def mkv_with_an_attachment(path: Path) -> bytes:
    """A Matroska video with an attachment and tags that name local files: FFmpeg must read
    neither (the attachment is only data; nothing is fetched)."""
    frames = face_frames(6, side=96)
    with av.open(str(path), "w", format="matroska") as output:
        output.metadata["title"] = "file:/etc/passwd"
        video = output.add_stream("libx264", rate=12)
        assert isinstance(video, av.VideoStream)
        video.height, video.width = 96, 96
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 12)
        output.add_attachment("file:///etc/passwd", "text/plain", b"file:///etc/passwd\n")
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 12)
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
    return path.read_bytes()


def refused_videos(clip: bytes) -> dict[str, tuple[Upload, int, str]]:
    return {
        "text named .mp4": (mp4(b"just some text, not a video\n" * 10), 415, "unsupported"),
        "an empty file": (mp4(b""), 400, "empty"),
        "a truncated mp4": (mp4(clip[: len(clip) // 2]), 400, "truncated"),
        "an mp4 cut inside its ftyp box": (mp4(clip[:10]), 400, "too short"),
        "an HLS playlist": (
            mp4(b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
            415,
            "HLS playlist",
        ),
        "an ffconcat script": (
            mp4(b"ffconcat version 1.0\nfile '/etc/passwd'\nfile 'file:/etc/hosts'\n"),
            415,
            "ffconcat",
        ),
        "a png named .mp4": (mp4(astronaut_png()), 415, "image"),
    }


VIDEO_CASES = list(refused_videos(b"\0" * 64).keys())


@pytest.mark.parametrize("case", VIDEO_CASES)
def test_what_is_not_a_whole_video_is_refused_plainly_and_nothing_is_lost(
    client: httpx.Client, gateway: Gateway, stored: Stored, clip: bytes, case: str
) -> None:
    upload, status, word = refused_videos(clip)[case]
    answer = post(client, "video", target=upload, source=png(astronaut_png()))
    assert_refused(answer, status, word)
    assert_nothing_lost(client, gateway, stored)


def test_an_mkv_whose_attachment_and_tags_name_local_files_reads_none_of_them(
    client: httpx.Client, gateway: Gateway, stored: Stored, tmp_path: Path
) -> None:
    data = mkv_with_an_attachment(tmp_path / "attached.mkv")
    answer = post(
        client,
        "video",
        target=Upload(data, b"a.mkv", "video/x-matroska"),
        source=png(astronaut_png()),
    )
    # A valid video: processed (the attachment is data FFmpeg never opens), the output an MP4
    # of the frames alone.
    assert answer.status_code == 200, answer.text
    assert answer.json()["frames"] == 6
    output = downloaded(client, f"/download/{name_of(answer)}")
    assert name_of(answer).endswith(".mp4") and output[4:8] == b"ftyp"
    assert b"root:" not in output and b"/bin/" not in output and b"passwd" not in output
    assert client.delete(f"/output/{name_of(answer)}").status_code == 200
    assert_nothing_lost(client, gateway, stored)


def chunked(parts: list[tuple[str, bytes | int]]) -> Iterator[bytes]:
    """A multipart body as a generator (httpx sends it `Transfer-Encoding: chunked`): each
    part's name and either its bytes or a count of zero bytes to stream in 256 kB pieces."""
    for name, content in parts:
        filename = f'; filename="{name}.bin"' if name in ("target", "source") else ""
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        if isinstance(content, bytes):
            yield content
        else:
            for start in range(0, content, 256 * 1024):
                yield b"\0" * min(256 * 1024, content - start)
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def post_chunked(
    client: httpx.Client, route: str, parts: list[tuple[str, bytes | int]]
) -> httpx.Response:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = client.post(f"/process/{route}", content=chunked(parts), headers=headers)
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in answer.request.headers
    return answer


@pytest.mark.parametrize(
    ("route", "target_bytes"),
    [
        # Past the route's body limit (file limits + framing): refused while it arrives.
        ("video", VIDEO_LIMIT + IMAGE_LIMIT + MB),
        # Under the body limit but over video_max_bytes: refused while it is saved.
        ("video", VIDEO_LIMIT + 256 * 1024),
        ("image", 2 * IMAGE_LIMIT + MB),
        ("image", IMAGE_LIMIT + 256 * 1024),
    ],
)
def test_a_chunked_upload_over_the_limit_is_a_413_and_leaves_nothing_behind(
    client: httpx.Client, gateway: Gateway, stored: Stored, route: str, target_bytes: int
) -> None:
    parts: list[tuple[str, bytes | int]] = [
        ("request", SWAP.encode()),
        ("source", astronaut_png()),
        ("target", target_bytes),
    ]
    answer = post_chunked(client, route, parts)
    assert_refused(answer, 413, "too large")
    assert_nothing_lost(client, gateway, stored)


@pytest.mark.parametrize("route", ["image", "video"])
def test_a_declared_length_over_the_limit_is_a_413_before_the_body_is_read(
    client: httpx.Client, gateway: Gateway, stored: Stored, route: str
) -> None:
    size = (VIDEO_LIMIT if route == "video" else IMAGE_LIMIT) * 3
    body, headers = multipart([("target", png(b"\0" * size)), ("source", png(astronaut_png()))], [])
    answer = client.post(f"/process/{route}", content=body, headers=headers)
    assert_refused(answer, 413, "too large")
    assert_nothing_lost(client, gateway, stored)


@pytest.mark.parametrize("route", ["image", "video"])
def test_a_gzip_encoded_body_is_refused_plainly(
    client: httpx.Client, gateway: Gateway, stored: Stored, clip: bytes, route: str
) -> None:
    """The gateway does not inflate request bodies: a compressed one is refused as such, and
    a small gzip bomb costs nothing."""
    target = png(astronaut_png()) if route == "image" else mp4(clip)
    body, headers = multipart(
        [("target", target), ("source", png(astronaut_png()))], [("request", SWAP)]
    )
    for payload in (gzip.compress(body), gzip.compress(b"\0" * (64 * MB))):
        answer = client.post(
            f"/process/{route}", content=payload, headers={**headers, "content-encoding": "gzip"}
        )
        assert_refused(answer, 415, "Content-Encoding", "uncompressed")
        assert answer.headers["accept-encoding"] == "identity"
    assert_nothing_lost(client, gateway, stored)


# --- names -----------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "..%2Fjobs.sqlite3",
    "..%2F..%2Fjobs.sqlite3",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%2E%2E",
    "uploads",
    "results",
    "jobs.sqlite3",
    "%00",
    "photo%00.png",
    "..%5C..%5Cjobs.sqlite3",
    "%252E%252E%252Fjobs.sqlite3",
    "x" * 5000,
]


def test_a_name_that_is_a_path_or_odd_is_a_404_everywhere(
    client: httpx.Client, gateway: Gateway, stored: Stored
) -> None:
    for name in [*HOSTILE_NAMES, f"{stored.output}%00", f"..%2Fresults%2F{stored.output}"]:
        for answer in (
            client.get(f"/download/{name}"),
            client.get(f"/download/{name}?cleanup=true"),
            client.delete(f"/output/{name}"),
        ):
            assert answer.status_code == 404, (name, answer.status_code, answer.text)
            assert_plain_refusal(answer)
    for path in ("/download//etc/passwd", "/download/%2F%2Fetc/passwd", "/output//etc/passwd"):
        assert client.get(path).status_code == 404, path
        assert client.delete(path).status_code in (404, 405), path
    assert gateway.settings.data_dir is not None
    assert (gateway.settings.data_dir / "jobs.sqlite3").is_file()
    assert_nothing_lost(client, gateway, stored)


def test_other_apis_ids_are_not_facefusion_outputs(
    client: httpx.Client, gateway: Gateway, stored: Stored
) -> None:
    """/download serves a restoration by its id and a swap output by its name, nothing else:
    an upscale job or result is a 404 there, and DELETE /output leaves a restoration alone."""
    for name in (stored.upscale_job_id, stored.upscale_result_id, stored.video_job_id):
        assert client.get(f"/download/{name}").status_code == 404, name
        assert client.delete(f"/output/{name}").status_code == 404, name
    assert client.delete(f"/output/{stored.restoration_id}").status_code == 404
    # A restoration is not a FaceFusion output: cleanup=true serves it and keeps it.
    answer = client.get(f"/download/{stored.restoration_id}?cleanup=true")
    assert answer.status_code == 200 and answer.content == stored.restoration_bytes
    assert_nothing_lost(client, gateway, stored)


def test_cleanup_twice_serves_once_then_404_and_the_file_is_gone(
    client: httpx.Client, gateway: Gateway, stored: Stored
) -> None:
    answer = post(client, "image", target=png(astronaut_png()), source=png(astronaut_png()))
    name = name_of(answer)
    before = {p.name for p in results_of(gateway)}
    assert name in before
    first = client.get(f"/download/{name}?cleanup=true")
    assert first.status_code == 200 and Image.open(io.BytesIO(first.content)).size == (256, 256)
    deadline = time.monotonic() + 5  # the file goes once the response is sent
    while name in {p.name for p in results_of(gateway)} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert name not in {p.name for p in results_of(gateway)}
    assert client.get(f"/download/{name}?cleanup=true").status_code == 404
    assert client.get(f"/download/{name}").status_code == 404
    assert client.delete(f"/output/{name}").status_code == 404
    assert_nothing_lost(client, gateway, stored)


Outcome = tuple[int, bytes] | httpx.HTTPError


def at_once(
    gateway: Gateway, calls: list[Callable[[httpx.Client], httpx.Response]]
) -> list[Outcome]:
    """Each call on its own connection, all released together; (status, body) or the error."""
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(base_url=gateway.url, timeout=120) as own:
            own.get("/health")  # connected before the barrier
            barrier.wait()
            try:
                answer = call(own)
                outcomes.append((answer.status_code, answer.content))
            except httpx.HTTPError as error:
                outcomes.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_downloads_of_one_output_with_cleanup_never_fail_midway(
    gateway: Gateway, client: httpx.Client, stored: Stored
) -> None:
    """Several clients fetch one output, half with cleanup=true: each gets the whole file or
    a 404, never a 500 or a cut-off body."""
    for _ in range(3):
        answer = post(client, "image", target=png(astronaut_png()), request=ENHANCE)
        assert answer.status_code == 200, answer.text
        url = f"/download/{name_of(answer)}"
        whole = downloaded(client, url)
        outcomes = at_once(
            gateway,
            [
                functools.partial(httpx.Client.get, url=f"{url}?cleanup={i % 2 == 0}")
                for i in range(8)
            ],
        )
        assert all(not isinstance(o, httpx.HTTPError) for o in outcomes), outcomes
        done = [o for o in outcomes if not isinstance(o, httpx.HTTPError)]
        assert {status for status, _ in done} <= {200, 404}, done
        assert [body for status, body in done if status == 200], "nobody got the output"
        assert all(body == whole for status, body in done if status == 200)
        assert client.get(url).status_code == 404
    assert_nothing_lost(client, gateway, stored)


def serve(response: Response, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """`response` answered to a GET as uvicorn (ASGI 2.3) runs it: status and body."""
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # no disconnect: the response ends the wait itself
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/download/x",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        "asgi": {"version": "3.0", "spec_version": "2.3"},
    }
    asyncio.run(response(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_an_output_deleted_after_its_download_began_is_still_sent_whole(tmp_path: Path) -> None:
    """The download race, made deterministic: the route opens the output, another request
    deletes it (cleanup=true, DELETE /output, expiry), and then the answer is sent."""
    from gateway.routes.downloads import HeldFileResponse, open_output

    data = astronaut_png()
    path = tmp_path / "output.png"
    for headers, status, expected in (
        (None, 200, data),
        ({"range": "bytes=10-19"}, 206, data[10:20]),
    ):
        path.write_bytes(data)
        handle = open_output(str(path))
        assert handle is not None
        path.unlink()
        response = HeldFileResponse(handle, media_type="image/png", filename="output.png")
        assert serve(response, headers) == (status, expected)
        assert handle.closed
    assert open_output(str(path)) is None and open_output(str(tmp_path)) is None


# --- overload --------------------------------------------------------------------------------


def test_concurrent_image_swaps_past_the_one_slot_get_503_with_retry_after(
    gateway: Gateway, client: httpx.Client, stored: Stored
) -> None:
    target, source = png(group_photo_png()), png(astronaut_png())
    answers: list[httpx.Response] = []

    def swap(own: httpx.Client) -> httpx.Response:
        answers.append(post(own, "image", target=target, source=source))
        return answers[-1]

    at_once(gateway, [swap] * 6)
    statuses = sorted(answer.status_code for answer in answers)
    assert len(answers) == 6 and set(statuses) <= {200, 503}, [
        (a.status_code, a.text) for a in answers
    ]
    assert 200 in statuses and 503 in statuses, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert_refused(answer, 503, "busy")
            assert int(answer.headers["retry-after"]) > 0
        else:
            assert answer.json()["faces_processed"] >= 5
            assert client.delete(f"/output/{name_of(answer)}").status_code == 200
    assert_nothing_lost(client, gateway, stored)


def test_async_video_jobs_past_max_pending_jobs_get_503_and_the_admitted_one_completes(
    gateway: Gateway, client: httpx.Client, stored: Stored, clip: bytes
) -> None:
    first = post(client, "video", target=mp4(clip), source=png(astronaut_png()), request=ASYNC)
    assert first.status_code == 200, first.text
    refused = [
        post(client, "video", target=mp4(clip), source=png(astronaut_png()), request=ASYNC)
        for _ in range(2)
    ]
    # Refused before the upload is stored or probed: a broken video gets the 503 too.
    refused.append(
        post(client, "video", target=mp4(clip[:100]), source=png(astronaut_png()), request=ASYNC)
    )
    for answer in refused:
        assert_refused(answer, 503, "jobs")
        assert int(answer.headers["retry-after"]) > 0
    # The refused uploads are gone at once; only the admitted job's input is kept, until it ends.
    assert len(uploads_of(gateway)) <= 1
    status = wait_for_status(client, first.json()["job_id"], {"completed", "failed"}, 120)
    assert status["status"] == "completed", status
    downloaded(client, str(status["result_url"]))
    assert_nothing_lost(client, gateway, stored)


# --- logs ------------------------------------------------------------------------------------


def test_no_face_data_is_logged_or_answered(
    gateway: Gateway, client: httpx.Client, stored: Stored
) -> None:
    """After the whole sweep (and a swap more): the log holds no embedding, no image bytes,
    no traceback; statuses do not show the stored identity."""
    swapped = post(client, "image", target=png(astronaut_png()), source=png(astronaut_png()))
    assert swapped.status_code == 200
    status = client.get(f"/status/{stored.video_job_id}")
    for body in (swapped.text, status.text):
        assert not FLOAT_RUN.search(body) and "source_identity" not in body
    assert gateway.settings.data_dir is not None
    database = gateway.settings.data_dir / "jobs.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        (parameters,) = connection.execute(
            "SELECT parameters FROM jobs WHERE id = ?", (stored.video_job_id,)
        ).fetchone()
    embedding = json.loads(parameters)["source_identity"]
    assert len(embedding) >= 128
    log = gateway.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "source_identity" not in log
    assert not [repr(v) for v in embedding[:32] if repr(v) in log]
    assert not FLOAT_RUN.search(log), FLOAT_RUN.search(log)
    # Access-log lines echo the URLs this sweep sent (a 5000-character name among them).
    messages = "\n".join(line for line in log.splitlines() if ' HTTP/1.1" ' not in line)
    assert not BASE64_RUN.search(messages), BASE64_RUN.search(messages)
    assert "IHDR" not in log and "JFIF" not in log
