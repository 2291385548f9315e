"""The face restoration pipeline with fake detector and restorer sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import UpstreamError
from gateway.faces.align import FFHQ_TEMPLATE_512, estimate_affine, transform_points
from gateway.faces.paste import coverage
from gateway.faces.restore_pipeline import RestoreOutcome, restore_image
from gateway.faces.types import Face

Image = npt.NDArray[np.uint8]
T = TypeVar("T")


def run(job: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(job)


def face_at(x: float, y: float, scale: float, score: float = 0.99, angle: float = 0.0) -> Face:
    """A face whose template points sit at (x, y) + scale·template, rotated by `angle`."""
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    landmarks = transform_points(FFHQ_TEMPLATE_512, np.array([[cos, -sin, x], [sin, cos, y]]))
    (x1, y1), (x2, y2) = landmarks.min(axis=0) - 20 * scale, landmarks.max(axis=0) + 20 * scale
    return Face(box=(x1, y1, x2, y2), score=score, landmarks=landmarks.astype(np.float32))


class FakeDetector:
    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces
        self.min_scores: list[float] = []

    async def detect(self, rgb: Image, *, min_score: float) -> list[Face]:
        self.min_scores.append(min_score)
        return list(self.faces)


class FakeRestorer:
    """Records each batch; restores by applying `model` to the batch."""

    def __init__(self, model: Callable[[Image], Image] = np.invert) -> None:
        self.model = model
        self.batches: list[tuple[int, ...]] = []

    async def restore(self, faces: Image) -> Image:
        self.batches.append(faces.shape)
        return self.model(faces)


def noise(height: int, width: int, seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


THREE_FACES = [face_at(10, 10, 0.15), face_at(120, 20, 0.12), face_at(60, 110, 0.1)]


def test_all_faces_of_an_image_go_to_the_restorer_in_one_batched_call():
    restorer = FakeRestorer()
    outcome = run(restore_image(noise(200, 220), FakeDetector(THREE_FACES), restorer, upscale=1))
    assert restorer.batches == [(3, 512, 512, 3)]
    assert outcome.restored_count == 3 and outcome.detected_count == 3
    assert outcome.faces == THREE_FACES


@pytest.mark.parametrize(("weight", "expected"), [(0.0, 100), (0.25, 139), (1.0, 255)])
def test_weight_blends_the_restored_face_with_the_original_crop(weight, expected):
    image = np.full((200, 200, 3), 100, dtype=np.uint8)
    face = face_at(30, 30, 0.25)
    restorer = FakeRestorer(lambda batch: np.full_like(batch, 255))
    outcome = run(restore_image(image, FakeDetector([face]), restorer, weight=weight, upscale=1))
    x, y = np.rint(face.landmarks[2]).astype(int)  # the nose: deep inside the mask
    assert tuple(outcome.image[y, x]) == (expected,) * 3  # round(255·w + 100·(1 − w))


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_the_output_is_the_input_size_times_upscale(upscale):
    outcome = run(
        restore_image(
            noise(50, 70), FakeDetector([face_at(5, 5, 0.08)]), FakeRestorer(), upscale=upscale
        )
    )
    assert outcome.image.shape == (50 * upscale, 70 * upscale, 3)
    assert outcome.background == ("unchanged" if upscale == 1 else "resized")


def test_without_faces_the_image_is_unchanged_and_the_restorer_is_not_called():
    image = noise(64, 48)
    restorer = FakeRestorer()
    outcome = run(restore_image(image, FakeDetector([]), restorer, upscale=1))
    assert np.array_equal(outcome.image, image)
    assert restorer.batches == [] and outcome.restored_count == 0


def test_without_faces_an_upscale_is_a_lanczos_resize():
    image = noise(30, 40)
    outcome = run(restore_image(image, FakeDetector([]), FakeRestorer(), upscale=2))
    expected = cv2.resize(image, (80, 60), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(outcome.image, expected)


def test_at_upscale_one_pixels_outside_the_face_masks_are_byte_identical():
    image = noise(200, 220, seed=5)
    outcome = run(restore_image(image, FakeDetector(THREE_FACES), FakeRestorer(), upscale=1))
    affines = [estimate_affine(face.landmarks, FFHQ_TEMPLATE_512) for face in THREE_FACES]
    outside = coverage(image.shape, affines, upscale=1, face_size=512) == 0
    assert outside.mean() > 0.3
    assert np.array_equal(outcome.image[outside], image[outside])
    assert not np.array_equal(outcome.image, image)


def test_a_background_enhancer_is_used_and_its_output_fitted_to_the_size():
    calls: list[tuple[tuple[int, ...], int]] = []

    async def enhance(rgb: Image, factor: int) -> Image:
        calls.append((rgb.shape, factor))
        return np.full((rgb.shape[0] * 4, rgb.shape[1] * 4, 3), 7, dtype=np.uint8)  # a ×4 model

    outcome = run(
        restore_image(
            noise(40, 50), FakeDetector([]), FakeRestorer(), upscale=3, background=enhance
        )
    )
    assert calls == [((40, 50, 3), 3)]
    assert outcome.background == "enhanced"
    assert outcome.image.shape == (120, 150, 3) and (outcome.image == 7).all()


def test_only_center_face_keeps_the_face_nearest_the_image_centre():
    faces = [face_at(0, 0, 0.1), face_at(70, 70, 0.1), face_at(150, 150, 0.1)]
    restorer = FakeRestorer()
    outcome = run(
        restore_image(
            noise(240, 240), FakeDetector(faces), restorer, upscale=1, only_center_face=True
        )
    )
    assert outcome.faces == [faces[1]] and restorer.batches == [(1, 512, 512, 3)]


def test_max_faces_keeps_the_largest_faces_in_detection_order():
    faces = [face_at(0, 0, 0.05), face_at(60, 0, 0.2), face_at(0, 120, 0.1), face_at(160, 0, 0.15)]
    outcome = run(
        restore_image(noise(260, 300), FakeDetector(faces), FakeRestorer(), upscale=1, max_faces=2)
    )
    assert outcome.faces == [faces[1], faces[3]]
    assert outcome.detected_count == 4


def test_low_scores_and_faces_with_eyes_under_five_pixels_apart_are_skipped():
    tiny = face_at(10, 10, 0.035)  # eyes ≈ 4.4 px apart
    unsure = face_at(60, 60, 0.2, score=0.4)
    kept = face_at(100, 10, 0.2, score=0.95)
    detector = FakeDetector([tiny, unsure, kept])
    outcome = run(
        restore_image(noise(200, 220), detector, FakeRestorer(), upscale=1, min_score=0.5)
    )
    assert tiny.eye_distance < 5
    assert outcome.faces == [kept]
    assert detector.min_scores == [0.5]


def test_a_restorer_answering_the_wrong_shape_is_an_upstream_error():
    restorer = FakeRestorer(lambda batch: batch[:, :256, :256])
    with pytest.raises(UpstreamError, match="face restorer returned"):
        run(restore_image(noise(100, 100), FakeDetector([face_at(5, 5, 0.1)]), restorer))


def test_a_failing_restorer_cancels_the_background_work():
    cancelled = []

    async def slow_enhance(rgb: Image, factor: int) -> Image:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return rgb

    restorer = FakeRestorer(lambda batch: batch[:, :1])
    detector = FakeDetector([face_at(5, 5, 0.1)])
    with pytest.raises(UpstreamError):
        run(restore_image(noise(100, 100), detector, restorer, background=slow_enhance))
    assert cancelled == [True]


def test_a_failing_background_enhancer_raises_its_own_error():
    async def broken(rgb: Image, factor: int) -> Image:
        raise UpstreamError("the upscaler is down")

    with pytest.raises(UpstreamError, match="upscaler is down"):
        run(restore_image(noise(20, 20), FakeDetector([]), FakeRestorer(), background=broken))


@pytest.mark.parametrize(
    "arguments",
    [
        {"weight": 1.5},
        {"weight": -0.1},
        {"upscale": 0},
        {"upscale": 5},
        {"max_faces": 0},
    ],
)
def test_out_of_range_arguments_are_rejected(arguments):
    with pytest.raises(ValueError):
        run(restore_image(noise(20, 20), FakeDetector([]), FakeRestorer(), **arguments))


def test_the_outcome_reports_its_upscale():
    outcome: RestoreOutcome = run(
        restore_image(noise(20, 20), FakeDetector([]), FakeRestorer(), upscale=2)
    )
    assert outcome.upscale == 2 and outcome.faces == []
