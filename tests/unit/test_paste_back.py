"""Pasting restored faces back: untouched outside the masks, aligned inside, feathered edges."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.faces.align import FFHQ_TEMPLATE_512, estimate_affine, transform_points, warp_face
from gateway.faces.paste import coverage, paste_affine, paste_back

Image = npt.NDArray[np.uint8]


def face_affine(angle: float, scale: float, shift: tuple[float, float]):
    """The crop affine of a face shown rotated and scaled at `shift` in the image."""
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    placement = np.array([[cos, -sin, shift[0]], [sin, cos, shift[1]]])
    return estimate_affine(transform_points(FFHQ_TEMPLATE_512, placement), FFHQ_TEMPLATE_512)


def noise(height: int, width: int, seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth(height: int, width: int, seed: int = 0) -> Image:
    """A photo-like image: noise blurred to features several pixels wide."""
    blurred = cv2.GaussianBlur(noise(height, width, seed).astype(np.float32), (0, 0), 4.0)
    stretched = (blurred - blurred.min()) / (blurred.max() - blurred.min()) * 255
    return np.rint(stretched).astype(np.uint8)


def resize(image: Image, size: tuple[int, int], interpolation: int) -> Image:
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)


def solid(value: int) -> Image:
    return np.full((512, 512, 3), value, dtype=np.uint8)


def whole_canvas_reference(background: Image, faces: list[Image], affines, upscale: int) -> Image:
    """facexlib's square-mask paste-back on full-size canvases, with our offset and rounding."""
    height, width = background.shape[:2]
    output = background.astype(np.float32)
    for face, affine in zip(faces, affines, strict=True):
        inverse = paste_affine(affine, upscale)
        warped = cv2.warpAffine(face, inverse, (width, height)).astype(np.float32)
        mask = cv2.warpAffine(np.ones((512, 512), np.float32), inverse, (width, height))
        eroded = cv2.erode(mask, np.ones((2 * upscale, 2 * upscale), np.uint8))
        edge = int(float(eroded.sum()) ** 0.5) // 20
        centre = cv2.erode(eroded, np.ones((2 * edge, 2 * edge), np.uint8))
        soft = cv2.GaussianBlur(centre, (2 * edge + 1, 2 * edge + 1), 0)[..., None]
        mixed = soft * (eroded[..., None] * warped) + (1 - soft) * output
        output = np.where(soft > 0, np.rint(mixed), output)
    return output.astype(np.uint8)


@pytest.mark.parametrize("upscale", [1, 2, 3])
def test_pixels_outside_every_face_mask_are_byte_identical(upscale):
    image = noise(240, 320)
    background = resize(image, (320 * upscale, 240 * upscale), cv2.INTER_NEAREST)
    affines = [
        face_affine(0.3, 0.25, (40.0, 30.0)),
        face_affine(-0.5, 0.2, (250.0, -40.0)),  # partly above the image
        face_affine(0.0, 0.2, (900.0, 900.0)),  # entirely outside
    ]
    faces = [solid(255), solid(0), solid(128)]
    pasted = paste_back(background, faces, affines, upscale=upscale)
    mask = coverage(background.shape, affines, upscale=upscale, face_size=512)
    outside = mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(pasted[outside], background[outside])
    changed = np.any(pasted != background, axis=2)
    assert changed[mask >= 0.5].mean() > 0.95  # and the faces did land inside
    assert pasted.dtype == np.uint8 and pasted.shape == background.shape


def test_the_background_itself_is_not_modified():
    background = noise(100, 100)
    before = background.copy()
    paste_back(background, [solid(255)], [face_affine(0.0, 0.1, (20.0, 20.0))], upscale=1)
    assert np.array_equal(background, before)


def test_a_face_restored_to_itself_pastes_back_close_to_the_original():
    image = smooth(300, 300)
    affine = face_affine(0.25, 0.35, (60.0, 50.0))
    crop = warp_face(image, affine)
    pasted = paste_back(image, [crop], [affine], upscale=1)
    inside = coverage(image.shape, [affine], upscale=1, face_size=512) > 0.99
    assert inside.sum() > 5000
    difference = np.abs(pasted.astype(int) - image.astype(int))[inside]
    assert difference.mean() < 1.0 and difference.max() <= 8


@pytest.mark.parametrize("upscale", [2, 4])
def test_a_face_pasted_onto_an_upscaled_background_lines_up_with_it(upscale):
    image = smooth(160, 160, seed=1)
    size = (160 * upscale, 160 * upscale)
    background = resize(image, size, cv2.INTER_LANCZOS4)
    affine = face_affine(-0.2, 0.2, (30.0, 40.0))
    pasted = paste_back(background, [warp_face(image, affine)], [affine], upscale=upscale)
    inside = coverage(background.shape, [affine], upscale=upscale, face_size=512) > 0.99
    difference = np.abs(pasted.astype(int) - background.astype(int))[inside]
    assert difference.mean() < 0.6  # half an output pixel off (upstream's s/2) gives ≥ 0.8


@pytest.mark.parametrize("upscale", [1, 2])
def test_working_in_the_face_region_matches_whole_canvas_paste_back(upscale):
    image = noise(200, 260, seed=2)
    background = resize(image, (260 * upscale, 200 * upscale), cv2.INTER_CUBIC)
    affines = [face_affine(0.4, 0.3, (20.0, 10.0)), face_affine(0.0, 0.15, (-30.0, 120.0))]
    faces = [noise(512, 512, seed=3), noise(512, 512, seed=4)]
    pasted = paste_back(background, faces, affines, upscale=upscale)
    reference = whole_canvas_reference(background, faces, affines, upscale)
    difference = np.abs(pasted.astype(int) - reference.astype(int))
    # Only OpenCV's fixed-point warp coordinates differ between the two, by a bit or two.
    assert difference.mean() < 0.05 and difference.max() <= 4


def test_the_mask_edge_is_feathered_not_hard():
    affine = face_affine(0.0, 0.4, (40.0, 40.0))
    mask = coverage((300, 300, 3), [affine], upscale=1, face_size=512)
    partial = (mask > 0.02) & (mask < 0.98)
    assert mask.max() == pytest.approx(1.0)
    assert partial.sum() > 0.05 * (mask > 0).sum()


def test_later_faces_are_blended_over_earlier_ones():
    background = np.zeros((200, 200, 3), dtype=np.uint8)
    affine = face_affine(0.0, 0.3, (30.0, 30.0))
    pasted = paste_back(background, [solid(80), solid(200)], [affine, affine], upscale=1)
    centre = transform_points([[256, 300]], np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2])
    x, y = np.rint(centre[0]).astype(int)
    assert tuple(pasted[y, x]) == (200, 200, 200)


def test_mismatched_faces_and_affines_are_rejected():
    with pytest.raises(ValueError, match="2 faces for 1 affines"):
        paste_back(noise(10, 10), [solid(0), solid(0)], [face_affine(0, 1, (0, 0))], upscale=1)
