"""gateway.faces.embed_align: the 150 px dlib chip template taken from dlib's mean face, and
chips cut so that a face's landmarks land on it at any size and rotation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gateway.faces.embed_align import (
    DLIB_TEMPLATE_150,
    cut_embedding_chip,
    cut_embedding_chips,
    dlib_chip_template,
    embedding_affine,
)

# get_face_chip_details' 5-point template (dlib's own shape predictor): right eye outer and
# inner corner, left eye outer and inner corner, base of the nose, unit-square coordinates.
DLIB_5_POINT = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def test_the_template_is_dlibs_mean_face_at_150_px_with_padding_025() -> None:
    expected = [[47.55, 46.60], [100.48, 46.60], [74.01, 76.56], [50.41, 103.02], [97.61, 103.02]]
    np.testing.assert_allclose(DLIB_TEMPLATE_150, expected, atol=0.01)
    assert not DLIB_TEMPLATE_150.flags.writeable


def test_the_template_is_left_right_symmetric_about_dlibs_face_centre() -> None:
    left_eye, right_eye, nose, mouth_left, mouth_right = DLIB_TEMPLATE_150
    centre = nose[0]
    assert left_eye[1] == right_eye[1] and mouth_left[1] == mouth_right[1]
    assert (left_eye[0] + right_eye[0]) / 2 == pytest.approx(centre, abs=0.01)
    assert (mouth_left[0] + mouth_right[0]) / 2 == pytest.approx(centre, abs=0.01)


def test_eye_centres_agree_with_dlibs_5_point_eye_corners_within_half_a_pixel() -> None:
    chip = (0.25 + DLIB_5_POINT) / 1.5 * 150
    left_eye, right_eye = chip[2:4].mean(axis=0), chip[0:2].mean(axis=0)
    np.testing.assert_allclose(DLIB_TEMPLATE_150[0], left_eye, atol=0.6)
    np.testing.assert_allclose(DLIB_TEMPLATE_150[1], right_eye, atol=0.6)


def test_the_template_scales_with_chip_size_and_padding() -> None:
    np.testing.assert_allclose(dlib_chip_template(300), DLIB_TEMPLATE_150 * 2, atol=1e-4)
    tight = dlib_chip_template(150, padding=0.0)
    np.testing.assert_allclose(tight[2], [0.490127 * 150, 0.515625 * 150], atol=1e-3)
    with pytest.raises(ValueError):
        dlib_chip_template(0)


def dots_image(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A gray image with a distinct bright disc at each landmark."""
    image = np.full((*shape, 3), 40, np.uint8)
    for index, (x, y) in enumerate(points):
        colour = [0, 0, 0]
        colour[index % 3] = 255
        cv2.circle(image, (round(x), round(y)), int(shape[0] / 60) + 3, colour, -1)
    return image


def dot_centres(chip: np.ndarray, count: int) -> np.ndarray:
    centres = []
    for index in range(count):
        channel = chip[..., index % 3].astype(np.float64)
        others = chip.astype(np.float64).sum(axis=2) - channel
        weight = np.clip(channel - others, 0, None)
        # Only the disc of this landmark: the nearest one to the template position.
        ys, xs = np.mgrid[: chip.shape[0], : chip.shape[1]]
        tx, ty = DLIB_TEMPLATE_150[index]
        weight[(xs - tx) ** 2 + (ys - ty) ** 2 > 15**2] = 0
        centres.append([(weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()])
    return np.array(centres)


def rotate(points: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    angle = np.deg2rad(degrees)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ matrix.T + centre


@pytest.mark.parametrize(("scale", "degrees"), [(1.0, 0.0), (0.7, 15.0), (3.0, -20.0), (5.5, 5.0)])
def test_landmarks_land_on_the_template_at_any_size_and_rotation(scale, degrees) -> None:
    """Big faces go through the halving pyramid first, small ones are enlarged; either way the
    landmarks end up where dlib's chips have them."""
    template = DLIB_TEMPLATE_150.astype(np.float64)
    landmarks = rotate(template * scale + 60, degrees, np.array([200.0, 200.0]))
    side = int(150 * scale + 300)
    chip = cut_embedding_chip(dots_image(landmarks, (side, side)), landmarks)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    np.testing.assert_allclose(dot_centres(chip, 5), template, atol=1.5)


def test_landmarks_on_the_template_give_the_identity() -> None:
    np.testing.assert_allclose(embedding_affine(DLIB_TEMPLATE_150), np.eye(2, 3), atol=1e-5)
    image = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cut_embedding_chip(image, DLIB_TEMPLATE_150), image)


def test_outside_the_photo_is_black_as_dlib_fills_it() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    chip = cut_embedding_chip(image, DLIB_TEMPLATE_150 - 100)  # the face sits off the top left
    assert (chip[-20:, -20:] == 200).all() and (chip[:20, :20] == 0).all()


def test_a_batch_of_faces_and_no_faces() -> None:
    image = np.zeros((300, 300, 3), np.uint8)
    landmarks = np.stack([DLIB_TEMPLATE_150, DLIB_TEMPLATE_150 + 100])
    assert cut_embedding_chips(image, landmarks).shape == (2, 150, 150, 3)
    assert cut_embedding_chips(image, np.zeros((0, 5, 2))).shape == (0, 150, 150, 3)
