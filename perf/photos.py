"""Realistic inputs for the user-level benchmark: real photos as a client uploads them.

Upscaling: scikit-image's astronaut, coffee and chelsea photos, centre-cropped to a square,
resized to the requested side and encoded as JPEG (quality 95). Restoration: insightface's group
photo `t1.jpg` (six faces) taken from the insightface wheel on PyPI, as
tests/integration/test_mtcnn_served.py does, or, offline, a group photo built from the
astronaut's real face in a 3×2 grid.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
from PIL import Image
from skimage import data

from perf.samples import Uint8Array

UPSCALE_PHOTOS: Final = ("astronaut", "coffee", "chelsea")
JPEG_QUALITY: Final = 95
# The group photo insightface ships (1280×886, six faces), never vendored.
INSIGHTFACE: Final = "insightface==2.1"
T1_MEMBER: Final = "insightface/data/images/t1.jpg"
T1_SHA256: Final = "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"
PIP_TIMEOUT_S: Final = 120.0
GroupSource = Literal["auto", "t1", "built"]


@dataclass(frozen=True)
class Upload:
    """One encoded photo as a client sends it."""

    name: str  # e.g. "coffee-256.jpg"
    data: bytes
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def skimage_photo(name: str) -> Uint8Array:
    """One of scikit-image's bundled RGB photos by name."""
    loader = getattr(data, name)
    return np.ascontiguousarray(loader(), dtype=np.uint8)


def square_photo(name: str, side: int) -> Uint8Array:
    """The photo's centre square, resized to side×side (area averaging down, cubic up)."""
    image = skimage_photo(name)
    height, width = image.shape[:2]
    crop = min(height, width)
    top, left = (height - crop) // 2, (width - crop) // 2
    square = image[top : top + crop, left : left + crop]
    interpolation = cv2.INTER_AREA if side < crop else cv2.INTER_CUBIC
    resized = cv2.resize(square, (side, side), interpolation=interpolation)
    return np.ascontiguousarray(resized, dtype=np.uint8)


def encode_jpeg(image: Uint8Array, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def upscale_uploads(side: int, names: tuple[str, ...] = UPSCALE_PHOTOS) -> list[Upload]:
    """The upscale inputs at one side: each photo as a JPEG upload, cycled by request index."""
    return [
        Upload(f"{name}-{side}.jpg", encode_jpeg(square_photo(name, side)), side, side)
        for name in names
    ]


def built_group_photo(columns: int = 3, rows: int = 2, cell: int = 160) -> Uint8Array:
    """A group photo made offline: the astronaut's real face (with hair and collar) in a grid,
    every other copy mirrored and each a little brighter, so no two faces are the same pixels."""
    portrait = skimage_photo("astronaut")[20:220, 120:320]
    canvas = np.full((rows * cell, columns * cell, 3), 90, dtype=np.uint8)
    for index in range(columns * rows):
        face = cv2.resize(portrait, (cell, cell), interpolation=cv2.INTER_AREA)
        if index % 2:
            face = face[:, ::-1]
        gain = 1.0 + 0.03 * index
        face = np.clip(face.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        top, left = (index // columns) * cell, (index % columns) * cell
        canvas[top : top + cell, left : left + cell] = face
    return canvas


def t1_from_wheel(wheel: Path) -> bytes:
    """t1.jpg out of the insightface wheel, checked against its pinned hash."""
    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(T1_MEMBER)
    if hashlib.sha256(content).hexdigest() != T1_SHA256:
        raise ValueError(f"{T1_MEMBER} in {wheel.name} does not have the pinned sha256")
    return content


def fetch_t1(cache: Path) -> bytes:
    """t1.jpg, from a wheel already under `cache` or one `pip download` puts there; raises
    OSError, ValueError, KeyError or subprocess errors when it cannot be had."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("insightface-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--quiet", "--dest", str(cache), INSIGHTFACE]
        subprocess.run(command, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
        wheels = sorted(cache.glob("insightface-*.whl"))
    if not wheels:
        raise OSError(f"pip download left no insightface wheel in {cache}")
    return t1_from_wheel(wheels[-1])


@dataclass(frozen=True)
class GroupPhoto:
    upload: Upload
    source: str  # where it came from, in words, for the report


def group_photo(source: GroupSource, cache: Path) -> GroupPhoto:
    """The restoration input: t1.jpg when asked for or available ("auto"), else the built one
    (re-encoded as a JPEG, as a client's photo would be). "t1" fails when it cannot be had."""
    reason = ""
    if source in ("auto", "t1"):
        try:
            content = fetch_t1(cache)
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
            if source == "t1":
                raise
            reason = f" (t1.jpg unavailable: {type(error).__name__}: {error})".splitlines()[0]
        else:
            image = Image.open(io.BytesIO(content))
            upload = Upload("t1.jpg", content, image.width, image.height)
            return GroupPhoto(upload, f"insightface t1.jpg from the {INSIGHTFACE} wheel")
    built = built_group_photo()
    upload = Upload("group.jpg", encode_jpeg(built), built.shape[1], built.shape[0])
    return GroupPhoto(upload, "a 3×2 grid of the astronaut's face, built offline" + reason)


def not_an_image(size: int = 64) -> bytes:
    """Bytes no image sniffer accepts: an upload the gateway refuses (415) before any model."""
    return b"not an image; " * size
