"""`facet swap` end to end: the command line (`python -m clients`) against the gateway process
over a real tritonserver (tiny synthetic swap models, the real MTCNN detector), on a photo and
on a short video with sound."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import ROOT, astronaut_png, photo_bytes
from tests.videos import read_video, write_video

pytestmark = pytest.mark.integration
FPS = 12
FRAMES = 6
QUEUED = re.compile(r"job (\S+) queued")


def facet(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clients", *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def face_frames(count: int, side: int = 128) -> list[np.ndarray]:
    """The astronaut's real face drifting right, two pixels per frame."""
    from skimage import data

    photo = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    crops = [photo[0:240, 100 + 2 * i : 340 + 2 * i] for i in range(count)]
    return [np.asarray(Image.fromarray(crop).resize((side, side))) for crop in crops]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"  # tmp_path also holds the gateway's data directory
    folder.mkdir()
    (folder / "face.png").write_bytes(astronaut_png())
    return folder


def test_facet_swap_replaces_the_face_of_a_photo_and_warns_of_synthetic_weights(
    swap_triton, start_gateway, work: Path
) -> None:
    gateway = start_gateway(swap_triton)
    target, output = work / "portrait.png", work / "swapped.png"
    target.write_bytes(photo_bytes((256, 256)))
    finished = facet(
        *("swap", str(target), "--source", str(work / "face.png"), "-o", str(output)),
        *("--url", gateway.url),
    )
    assert finished.returncode == 0, finished.stderr
    line = finished.stdout.strip()
    assert line.startswith(f"{output}: 256×256 PNG, 1 face detected, 1 swapped via the gateway")
    assert "synthetic weights" in finished.stderr and "facet: warning: " in finished.stderr
    swapped = np.asarray(Image.open(output).convert("RGB")).astype(int)
    original = np.asarray(Image.open(target).convert("RGB")).astype(int)
    changed = np.argwhere((swapped != original).any(axis=2))
    assert len(changed) and changed[:, 0].max() < 150  # the face, not her suit
    assert sorted(p.name for p in work.iterdir()) == ["face.png", "portrait.png", "swapped.png"]


def test_facet_swap_runs_a_video_job_keeping_every_frame_and_the_sound(
    swap_triton, start_gateway, work: Path
) -> None:
    gateway = start_gateway(swap_triton)
    clip, output = work / "clip.mp4", work / "clip_out.mp4"
    write_video(clip, face_frames(FRAMES), fps=FPS)
    finished = facet(
        *("swap", str(clip), "--source", str(work / "face.png"), "-o", str(output)),
        *("--url", gateway.url),
    )
    assert finished.returncode == 0, finished.stderr
    assert f"{FRAMES} frames at {float(FPS)} fps" in finished.stdout
    times, frames, audio_s = read_video(output)
    source_times, originals, _ = read_video(clip)
    assert len(frames) == FRAMES and np.allclose(times, source_times, atol=1 / FPS / 10)
    assert audio_s is not None
    pairs = zip(frames, originals, strict=True)
    assert min(np.abs(a.astype(int) - b.astype(int)).max() for a, b in pairs) > 40  # every face
    queued = QUEUED.search(finished.stderr)
    assert queued is not None, finished.stderr
    with gateway.client() as client:  # downloaded, then deleted with its job
        assert client.get(f"/status/{queued[1]}").status_code == 404
