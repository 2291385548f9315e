"""The FaceFusion API's image routes against a real stack (tiny synthetic swap models, the real
MTCNN detector) on real photos: the insightface wheel's six-person group photo as the target,
the astronaut as the source."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import astronaut_png, photo_bytes
from tests.photos import group_photo_jpeg

pytestmark = pytest.mark.integration
SWAP = json.dumps({"processors": ["face_swapper"], "execution_providers": ["cpu"]})


@pytest.fixture(scope="module")
def group_jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return group_photo_jpeg(tmp_path_factory.mktemp("insightface"))


@pytest.fixture
def swap_gateway(swap_triton, start_gateway):
    return start_gateway(swap_triton)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def post_image(
    client: httpx.Client, target: bytes, source: bytes | None, request: str | None = SWAP
) -> httpx.Response:
    files = {"target": ("target.jpg", target)}
    if source is not None:
        files["source"] = ("source.png", source)
    data = {"request": request} if request is not None else {}
    return client.post("/process/image", files=files, data=data, timeout=120)


def test_the_seed_curl_example_swaps_every_face_of_a_group_photo(swap_gateway, group_jpeg):
    with swap_gateway.client() as client:
        response = post_image(client, group_jpeg, astronaut_png())
        assert response.status_code == 200, response.text
        body = response.json()
        assert re.fullmatch(r"api_\d{8}_\d{6}_[0-9a-f]{6}", body["job_id"])
        assert body["status"] == "completed"
        assert re.fullmatch(r"\.api_outputs/[0-9a-f-]{36}\.jpg", body["output_path"])
        assert body["faces_processed"] >= 5, body  # t1.jpg has six faces
        assert body["execution_providers"] == ["cpu"]
        assert "synthetic" in body["warning"]
        filename = body["output_path"].split("/")[-1]
        download = client.get(f"/download/{filename}")
        assert download.status_code == 200
        assert f'filename="{filename}"' in download.headers["content-disposition"]
        swapped, original = decode(download.content), decode(group_jpeg)
        assert swapped.shape == original.shape
        assert np.abs(swapped.astype(int) - original.astype(int)).max() > 50


def test_pixels_far_from_every_face_are_unchanged_in_a_png(swap_gateway):
    target = photo_bytes((256, 256), fmt="PNG")
    with swap_gateway.client() as client:
        response = post_image(client, target, astronaut_png())
        assert response.status_code == 200, response.text
        assert response.json()["faces_processed"] == 1
        filename = response.json()["output_path"].split("/")[-1]
        assert filename.endswith(".png")
        swapped = decode(client.get(f"/download/{filename}").content)
    original = decode(target)
    changed = np.argwhere((swapped != original).any(axis=2))
    assert len(changed), "the face was not swapped"
    # The astronaut's face lies in the upper middle; her suit and the flag stay untouched.
    assert changed[:, 0].max() < 150 and changed[:, 1].min() > 60


def test_output_image_scale_resizes_the_result(swap_gateway):
    request = json.dumps({"processors": ["face_swapper"], "output_image_scale": 50})
    with swap_gateway.client() as client:
        response = post_image(client, photo_bytes((200, 160), fmt="PNG"), astronaut_png(), request)
        assert response.status_code == 200, response.text
        filename = response.json()["output_path"].split("/")[-1]
        assert decode(client.get(f"/download/{filename}").content).shape == (80, 100, 3)


@pytest.mark.parametrize(
    ("request_text", "source", "words"),
    [
        (SWAP, False, "needs a 'source'"),
        ('{"execution_providers":["quantum"]}', True, "accepted: cpu, cuda"),
        ('{"processors":["lip_syncer"]}', True, "accepted: face_swapper"),
        ('{"face_detector_model":"yoloface_8n"}', True, "mtcnn, scrfd"),
        ("{oops", True, "not valid JSON"),
    ],
)
def test_a_bad_request_is_a_400_with_the_reason(swap_gateway, request_text, source, words):
    with swap_gateway.client() as client:
        response = post_image(
            client, photo_bytes(), astronaut_png() if source else None, request_text
        )
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]


def test_a_source_without_a_face_is_a_400(swap_gateway):
    grey = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 120, 120)).save(grey, format="PNG")
    with swap_gateway.client() as client:
        response = post_image(client, astronaut_png(), grey.getvalue())
    assert response.status_code == 400, response.text
    assert "no face" in response.json()["detail"]


def test_processors_and_health_say_what_is_available(swap_gateway):
    with swap_gateway.client() as client:
        processors = client.get("/processors").json()
        health = client.get("/health").json()
    names = {p["name"]: p for p in processors}
    assert set(names) == {"face_swapper", "face_enhancer", "frame_enhancer"}
    assert all(p["available"] for p in processors), processors
    assert "synthetic" in names["face_swapper"]["warning"]
    assert health["processors_available"] == ["face_swapper", "face_enhancer", "frame_enhancer"]
    assert {"status", "version", "models", "triton"} <= set(health)


def test_a_download_with_cleanup_deletes_the_output_and_delete_removes_one(swap_gateway):
    with swap_gateway.client() as client:
        first = post_image(client, astronaut_png(), astronaut_png()).json()
        second = post_image(client, astronaut_png(), astronaut_png()).json()
        name = Path(first["output_path"]).name
        assert client.get(f"/download/{name}?cleanup=true").status_code == 200
        assert client.get(f"/download/{name}").status_code == 404
        other = Path(second["output_path"]).name
        assert client.delete(f"/output/{other}").json()["filename"] == other
        assert client.delete(f"/output/{other}").status_code == 404
        assert client.get("/download/..%2Fjobs.sqlite3").status_code == 404


def test_face_enhancer_alone_needs_no_source(swap_gateway):
    request = json.dumps({"processors": ["face_enhancer"]})
    with swap_gateway.client() as client:
        response = post_image(client, astronaut_png(), None, request)
    assert response.status_code == 200, response.text
    assert response.json()["faces_processed"] == 1


SEED_PYTHON_EXAMPLE = """
import requests

# API endpoint
API_URL = "http://localhost:8000"

# Process image
with open("target.jpg", "rb") as target_file, \\
     open("source.jpg", "rb") as source_file:

    files = {
        "target": target_file,
        "source": source_file
    }

    data = {
        "request": '{"processors":["face_swapper"],"execution_providers":["cpu"]}'
    }

    response = requests.post(f"{API_URL}/process/image", files=files, data=data)
    result = response.json()

    print(f"Job ID: {result['job_id']}")
    print(f"Status: {result['status']}")

    if result['status'] == 'completed':
        # Download result
        output_filename = result['output_path'].split('/')[-1]
        output_response = requests.get(f"{API_URL}/download/{output_filename}")

        with open("result.jpg", "wb") as f:
            f.write(output_response.content)

        print("Result saved to result.jpg")
"""


def test_the_seeds_python_client_example_runs_unchanged_but_for_the_port(
    swap_gateway, group_jpeg, tmp_path, monkeypatch
):
    (tmp_path / "target.jpg").write_bytes(group_jpeg)
    (tmp_path / "source.jpg").write_bytes(astronaut_png())
    monkeypatch.chdir(tmp_path)
    code = SEED_PYTHON_EXAMPLE.replace("http://localhost:8000", swap_gateway.url)
    exec(compile(code, "seed_001_python_example", "exec"), {})
    result = decode((tmp_path / "result.jpg").read_bytes())
    assert result.shape == decode(group_jpeg).shape
