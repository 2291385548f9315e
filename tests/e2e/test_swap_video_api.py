"""The FaceFusion API's video route against a real stack (tiny synthetic swap models, the real
MTCNN detector): short videos with sound that the test writes, a real face moving in them."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import astronaut_png
from tests.videos import read_video, write_video

pytestmark = pytest.mark.integration
FPS = 12
FRAMES = 18


def face_frames(count: int = FRAMES, side: int = 160) -> list[np.ndarray]:
    """The astronaut's real face drifting right, one pixel per frame."""
    from skimage import data

    photo = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    return [
        np.ascontiguousarray(
            np.asarray(Image.fromarray(photo[0:240, 100 + i : 340 + i]).resize((side, side)))
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    path = tmp_path_factory.mktemp("videos") / "clip.mp4"
    return path, write_video(path, face_frames(), fps=FPS)


@pytest.fixture
def swap_gateway(swap_triton, start_gateway):
    return start_gateway(swap_triton)


def post_video(
    client: httpx.Client, video: bytes, request: dict[str, object], name: str = "clip.mp4"
) -> httpx.Response:
    files = {"target": (name, video), "source": ("face.png", astronaut_png())}
    return client.post(
        "/process/video", files=files, data={"request": json.dumps(request)}, timeout=300
    )


def download(client: httpx.Client, body: dict[str, object], folder: Path) -> Path:
    name = str(body["output_path"]).split("/")[-1]
    response = client.get(f"/download/{name}")
    assert response.status_code == 200
    path = folder / name
    path.write_bytes(response.content)
    return path


def test_the_seed_video_example_keeps_frames_timestamps_and_sound(swap_gateway, clip, tmp_path):
    path, times = clip
    request = {
        "processors": ["face_swapper"],
        "execution_providers": ["cpu"],
        "execution_thread_count": 4,
    }
    with swap_gateway.client() as client:
        response = post_video(client, path.read_bytes(), request)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed" and body["output_path"].endswith(".mp4")
        assert body["frames"] == FRAMES
        assert body["faces_processed"] >= FRAMES - 2, body
        output = download(client, body, tmp_path)
    got_times, frames, audio_s = read_video(output)
    _, originals, source_audio_s = read_video(path)
    assert len(got_times) == len(times)
    assert np.allclose(got_times, times, atol=1 / FPS / 10)
    assert audio_s is not None and source_audio_s is not None
    assert abs(audio_s - source_audio_s) < 0.03
    differences = [
        np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(frames, originals, strict=True)
    ]
    assert min(differences) > 40  # every frame's face was replaced


def test_a_variable_frame_rate_video_keeps_its_timestamps(swap_gateway, tmp_path):
    path = tmp_path / "vfr.mp4"
    times = write_video(path, face_frames(9), fps=FPS, vfr=True)
    with swap_gateway.client() as client:
        response = post_video(client, path.read_bytes(), {"processors": ["face_swapper"]})
        assert response.status_code == 200, response.text
        output = download(client, response.json(), tmp_path)
    got, _, _ = read_video(output)
    assert np.allclose(got, times, atol=1e-3)
    assert len(set(np.round(np.diff(got), 3))) > 1  # still irregular


def test_output_fps_and_scale_are_honoured(swap_gateway, clip, tmp_path):
    path, _ = clip
    request = {"processors": ["face_swapper"], "output_video_fps": 6, "output_video_scale": 50}
    with swap_gateway.client() as client:
        response = post_video(client, path.read_bytes(), request)
        assert response.status_code == 200, response.text
        output = download(client, response.json(), tmp_path)
    got, frames, audio_s = read_video(output)
    assert len(got) == FRAMES // 2
    assert frames[0].shape == (80, 80, 3)
    assert audio_s is not None


def test_the_asynchronous_mode_answers_at_once_and_reports_progress(swap_gateway, clip, tmp_path):
    path, _ = clip
    with swap_gateway.client() as client:
        response = post_video(client, path.read_bytes(), {"async": True})
        assert response.status_code == 200, response.text
        queued = response.json()
        assert queued["status"] == "queued"
        deadline, status = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            status = client.get(queued["status_url"]).json()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert status["status"] == "completed", status
        assert status["progress"] == 100
        assert "source_identity" not in status["parameters"]
        assert status["outcome"]["frames"] == FRAMES
        output = download(client, status, tmp_path)
    assert len(read_video(output)[0]) == FRAMES


def test_a_webm_comes_back_as_vp9_webm(swap_gateway, tmp_path):
    path = tmp_path / "clip.webm"
    write_video(
        path,
        face_frames(6),
        fps=FPS,
        container="webm",
        video_codec="libvpx-vp9",
        audio_codec="libopus",
    )
    with swap_gateway.client() as client:
        response = post_video(client, path.read_bytes(), {}, name="clip.webm")
        assert response.status_code == 200, response.text
        assert response.json()["output_path"].endswith(".webm")


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"just some text, not a video\n" * 10, 415),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n", 415),
        (b"ffconcat version 1.0\nfile '/etc/passwd'\n", 415),
    ],
)
def test_what_is_not_a_video_is_refused(swap_gateway, payload, status):
    with swap_gateway.client() as client:
        response = post_video(client, payload, {})
    assert response.status_code == status, response.text


def test_a_truncated_video_is_a_400(swap_gateway, clip):
    path, _ = clip
    data = path.read_bytes()
    with swap_gateway.client() as client:
        response = post_video(client, data[: len(data) // 2], {})
    assert response.status_code == 400, response.text


def test_a_video_over_the_frame_limit_is_refused_naming_it(swap_triton, start_gateway, clip):
    gateway = start_gateway(swap_triton, video_max_frames=5)
    path, _ = clip
    with gateway.client() as client:
        response = post_video(client, path.read_bytes(), {})
    assert response.status_code == 413, response.text
    assert "video_max_frames" in response.json()["detail"]


def test_a_video_without_a_source_face_is_a_400(swap_gateway, clip):
    path, _ = clip
    grey = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 120, 120)).save(grey, format="PNG")
    files = {"target": ("clip.mp4", path.read_bytes()), "source": ("grey.png", grey.getvalue())}
    with swap_gateway.client() as client:
        response = client.post("/process/video", files=files, timeout=60)
    assert response.status_code == 400, response.text
    assert "no face" in response.json()["detail"]
