"""Real photos that registry packages ship, fetched at test time (never vendored) and checked by
their sha256. CI reaches the registries, so a failed download fails the test, never skips it.

- the face_recognition 1.3.0 sdist (MIT), tests/test_images/: obama.jpg, obama2.jpg, obama3.jpg
  (three photos of Barack Obama taken on different occasions) and biden.jpg (Joe Biden);
- the insightface 2.1 wheel, insightface/data/images/: Tom_Hanks_54745.png and t1.jpg (a group
  photo of six people).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

PIP_TIMEOUT_S = 300
FACE_RECOGNITION = "face_recognition==1.3.0"
INSIGHTFACE = "insightface==2.1"
IMAGES = "face_recognition-1.3.0/tests/test_images"
INSIGHTFACE_IMAGES = "insightface/data/images"
# name → (the package, member of its archive, the member's sha256)
PHOTOS = {
    "obama": (
        FACE_RECOGNITION,
        f"{IMAGES}/obama.jpg",
        "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    ),
    "obama2": (
        FACE_RECOGNITION,
        f"{IMAGES}/obama2.jpg",
        "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    ),
    "obama3": (
        FACE_RECOGNITION,
        f"{IMAGES}/obama3.jpg",
        "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    ),
    "biden": (
        FACE_RECOGNITION,
        f"{IMAGES}/biden.jpg",
        "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
    ),
    "hanks": (
        INSIGHTFACE,
        f"{INSIGHTFACE_IMAGES}/Tom_Hanks_54745.png",
        "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    ),
    "t1": (
        INSIGHTFACE,
        f"{INSIGHTFACE_IMAGES}/t1.jpg",
        "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
    ),
}
# insightface ships wheels; face_recognition's test photos are only in its sdist.
ARCHIVE_KIND = {FACE_RECOGNITION: "--no-binary=:all:", INSIGHTFACE: "--only-binary=:all:"}


def pip_download(requirement: str, folder: Path) -> Path:
    """The package's archive (wheel or sdist), downloaded into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    command += [ARCHIVE_KIND[requirement], "--dest", str(folder), requirement]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
    except (subprocess.SubprocessError, OSError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        pytest.fail(f"cannot download {requirement}: {exc} {stderr.decode(errors='replace')}")
    (archive,) = [p for p in folder.iterdir() if p.suffix in (".whl", ".gz")]
    return archive


def read_members(archive: Path, members: list[str]) -> dict[str, bytes]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return {m: wheel.read(m) for m in members}
    with tarfile.open(archive) as sdist:
        found = {}
        for member in members:
            handle = sdist.extractfile(member)
            assert handle is not None, member
            found[member] = handle.read()
        return found


def photo_bytes(names: list[str], folder: Path) -> dict[str, bytes]:
    """The named photos of PHOTOS as their file bytes, each checked against its sha256."""
    found: dict[str, bytes] = {}
    for package in sorted({PHOTOS[name][0] for name in names}):
        wanted = [name for name in names if PHOTOS[name][0] == package]
        archive = pip_download(package, folder / package.split("=")[0])
        data = read_members(archive, [PHOTOS[name][1] for name in wanted])
        for name in wanted:
            _, member, sha256 = PHOTOS[name]
            assert hashlib.sha256(data[member]).hexdigest() == sha256, member
            found[name] = data[member]
    return found


def decode_rgb(data: bytes) -> npt.NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def photos_rgb(names: list[str], folder: Path) -> dict[str, npt.NDArray[np.uint8]]:
    return {name: decode_rgb(data) for name, data in photo_bytes(names, folder).items()}


def group_photo_jpeg(folder: Path) -> bytes:
    """t1.jpg, the insightface wheel's group photo (six faces), as its JPEG bytes."""
    return photo_bytes(["t1"], folder)["t1"]
