"""Five-point alignment onto the FFHQ and ArcFace templates, and the crop it makes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.faces.align import (
    ARCFACE_TEMPLATE_112,
    FFHQ_BORDER_RGB,
    FFHQ_TEMPLATE_512,
    arcface_template,
    estimate_affine,
    ffhq_template,
    invert_affine,
    transform_points,
    umeyama_similarity,
    warp_face,
)
from gateway.faces.types import Face

# One colour per landmark, to find each point again in a crop.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> npt.NDArray[np.float64]:
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[cos, -sin, shift[0]], [sin, cos, shift[1]]])


def landmarks_in_image(angle: float, scale: float, shift: tuple[float, float]):
    """Where the template points land in an image showing the face rotated and scaled."""
    return transform_points(FFHQ_TEMPLATE_512, similarity(angle, scale, shift))


def test_the_ffhq_template_is_facexlibs_five_points_for_512_pixels():
    assert FFHQ_TEMPLATE_512.shape == (5, 2)
    assert FFHQ_TEMPLATE_512[0].tolist() == pytest.approx([192.98138, 239.94708])
    assert FFHQ_TEMPLATE_512[4].tolist() == pytest.approx([313.08905, 371.15118])
    np.testing.assert_allclose(ffhq_template(256), FFHQ_TEMPLATE_512 / 2, rtol=1e-6)
    assert not FFHQ_TEMPLATE_512.flags.writeable


def test_arcface_templates_scale_by_112_or_by_128_with_an_x_shift():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2, rtol=1e-6)
    shifted = ARCFACE_TEMPLATE_112 * 1.0 + [8.0, 0.0]
    np.testing.assert_allclose(arcface_template(128), shifted, rtol=1e-6)
    np.testing.assert_allclose(arcface_template(256), shifted * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="112 or 128"):
        arcface_template(100)


@pytest.mark.parametrize("method", ["lmeds", "umeyama"])
def test_an_exact_similarity_is_recovered_by_either_method(method):
    landmarks = landmarks_in_image(0.4, 0.3, (50.0, 70.0))
    affine = estimate_affine(landmarks, FFHQ_TEMPLATE_512, method=method)
    np.testing.assert_allclose(affine, invert_affine(similarity(0.4, 0.3, (50.0, 70.0))), atol=1e-3)


def test_align_then_invert_round_trips_landmarks_within_one_pixel():
    rng = np.random.default_rng(7)
    for _ in range(20):
        angle, scale = rng.uniform(-0.8, 0.8), rng.uniform(0.05, 2.0)
        landmarks = landmarks_in_image(angle, scale, tuple(rng.uniform(0, 400, 2)))
        noisy = landmarks + rng.normal(0.0, 0.2, landmarks.shape)  # detector jitter
        affine = estimate_affine(noisy, FFHQ_TEMPLATE_512)
        in_crop = transform_points(noisy, affine)
        back = transform_points(in_crop, invert_affine(affine))
        assert np.abs(back - noisy).max() < 1e-6
        # The template, mapped back into the image, lands on the detected points.
        assert np.abs(transform_points(FFHQ_TEMPLATE_512, invert_affine(affine)) - noisy).max() < 1


def test_lmeds_is_deterministic_and_agrees_with_least_squares_on_five_good_points():
    rng = np.random.default_rng(3)
    noisy = landmarks_in_image(0.2, 0.5, (30.0, 40.0)) + rng.normal(0, 1.0, (5, 2))
    first = estimate_affine(noisy, FFHQ_TEMPLATE_512)
    assert np.array_equal(first, estimate_affine(noisy, FFHQ_TEMPLATE_512))
    np.testing.assert_allclose(first, umeyama_similarity(noisy, FFHQ_TEMPLATE_512), atol=1e-3)


def test_the_fit_never_mirrors_the_face():
    mirrored = FFHQ_TEMPLATE_512 * np.array([-1.0, 1.0])
    affine = umeyama_similarity(mirrored, FFHQ_TEMPLATE_512)
    assert np.linalg.det(affine[:, :2]) > 0


def test_degenerate_landmarks_are_rejected():
    with pytest.raises(ValueError, match="degenerate"):
        umeyama_similarity(np.ones((5, 2)), FFHQ_TEMPLATE_512)
    with pytest.raises(ValueError):
        estimate_affine(np.ones((4, 2)), FFHQ_TEMPLATE_512)


def test_a_synthetic_face_is_warped_onto_the_template():
    image = np.full((400, 500, 3), 40, dtype=np.uint8)
    landmarks = landmarks_in_image(0.35, 0.45, (150.0, 60.0))
    for (x, y), colour in zip(landmarks, COLOURS, strict=True):
        cv2.circle(image, (round(x), round(y)), 4, colour, thickness=-1)
    crop = warp_face(image, estimate_affine(landmarks, FFHQ_TEMPLATE_512))
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    for expected, colour in zip(FFHQ_TEMPLATE_512, COLOURS, strict=True):
        hits = np.argwhere(np.all(np.abs(crop.astype(int) - colour) < 60, axis=2))
        centre = hits.mean(axis=0)[::-1]  # (row, col) → (x, y)
        assert np.abs(centre - expected).max() < 2.0


def test_the_crop_outside_the_image_is_facexlibs_gray_in_rgb_order():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    landmarks = landmarks_in_image(0.0, 0.1, (-20.0, -20.0))  # the face's top-left is cut off
    crop = warp_face(image, estimate_affine(landmarks, FFHQ_TEMPLATE_512))
    assert tuple(crop[0, 0]) == FFHQ_BORDER_RGB == (132, 133, 135)
    assert tuple(crop[-1, -1]) == (0, 0, 0)


def test_a_face_keeps_read_only_float32_landmarks_and_refuses_bad_shapes():
    face = Face(box=(0, 0, 10, 10), score=0.9, landmarks=np.zeros((5, 2), np.float32))
    assert face.landmarks.dtype == np.float32 and not face.landmarks.flags.writeable
    assert face.area == 100 and face.center == (5, 5)
    with pytest.raises(ValueError, match=r"\[5, 2\]"):
        Face(box=(0, 0, 1, 1), score=1.0, landmarks=np.zeros((4, 2), np.float32))
