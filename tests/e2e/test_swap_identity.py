"""Does a swap carry the source's identity? Only a trained swapper can: this runs when the
official inswapper_128.onnx and w600k_r50.onnx are in weights/ (they are non-commercial files no
registry package ships, so CI never has them), and measures identity with the real offline
embedder (dlib's ResNet, package weights) on real photos: Obama's face swapped onto Biden's
photo must come out closer to Obama than Biden's own face was."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.models.dlib_face import dlib_descriptor
from export.models.mtcnn import reference_detect
from gateway.faces.embed_align import cut_embedding_chip
from tests.photos import photo_bytes

pytestmark = pytest.mark.integration
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
OFFICIAL = ("inswapper_128.onnx", "w600k_r50.onnx")


@pytest.fixture(scope="module")
def official_triton(start_triton, tmp_path_factory: pytest.TempPathFactory):
    missing = [name for name in OFFICIAL if not (WEIGHTS / name).is_file()]
    if missing:
        pytest.skip(f"needs the official {', '.join(missing)} in weights/ (not redistributable)")
    from tests.integration.conftest import build_repository

    root = tmp_path_factory.mktemp("official_swap")
    build_repository(root, ["arcface_w600k_r50", "swap_latent", "inswapper_128"])
    return start_triton(build_repository(root, ["face_detect_mtcnn"]))


def descriptor(image: np.ndarray) -> np.ndarray:
    """dlib's 128-d descriptor of the photo's best face."""
    _, scores, landmarks = reference_detect(image)
    return dlib_descriptor(cut_embedding_chip(image, landmarks[int(np.argmax(scores))]))


def test_a_swapped_face_is_closer_to_the_source_than_the_target_was(
    official_triton, start_gateway, tmp_path
):
    photos = photo_bytes(["obama", "obama2", "biden"], tmp_path)
    gateway = start_gateway(official_triton)
    request = json.dumps({"processors": ["face_swapper"]})
    files = {"target": ("biden.jpg", photos["biden"]), "source": ("obama.jpg", photos["obama"])}
    with gateway.client() as client:
        response = client.post(
            "/process/image", files=files, data={"request": request}, timeout=300
        )
        assert response.status_code == 200, response.text
        name = response.json()["output_path"].split("/")[-1]
        swapped = np.asarray(Image.open(io.BytesIO(client.get(f"/download/{name}").content)))
    obama = descriptor(np.asarray(Image.open(io.BytesIO(photos["obama2"])).convert("RGB")))
    biden = descriptor(np.asarray(Image.open(io.BytesIO(photos["biden"])).convert("RGB")))
    after = float(np.linalg.norm(descriptor(swapped.copy()) - obama))
    before = float(np.linalg.norm(biden - obama))
    print(f"dlib distance to Obama: Biden's face {before:.3f}, swapped face {after:.3f}")
    assert after < before
