"""The gateway's BLIP preprocessing (gateway/context/blip_image.py) against transformers'
BlipImageProcessor (its PIL backend, BlipImageProcessorPil; the default backend needs
torchvision, which the gateway does not install): the same 384² uint8 pixels before the rescale
and normalisation that run inside the graph. Tolerance: none (byte for byte)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from gateway.context import blip_image, blip_session
from gateway.context.blip_image import BLIP_SIZE, to_blip_batch, to_blip_input
from tests.imports import imported_packages
from tests.unit.image_processors import photo, processed

SIZES = [
    (384, 384),
    (385, 384),
    (100, 100),
    (300, 1000),
    (1000, 300),
    (640, 480),
    (7, 3000),
    (1, 1),
]


@pytest.fixture(scope="module")
def processor():
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    return BlipImageProcessorPil()


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_real_photos_resize_byte_for_byte_as_blip_image_processor(processor, name) -> None:
    rgb = np.ascontiguousarray(getattr(data, name)())
    ours = to_blip_input(rgb)
    assert ours.shape == (BLIP_SIZE, BLIP_SIZE, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, processed(processor, rgb))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_any_size_resizes_byte_for_byte_as_blip_image_processor(processor, height, width) -> None:
    rgb = photo(height, width, seed=height * 7 + width)
    np.testing.assert_array_equal(to_blip_input(rgb), processed(processor, rgb))


def test_the_aspect_ratio_is_not_kept_and_nothing_is_cropped() -> None:
    left_half_white = np.zeros((100, 400, 3), np.uint8)
    left_half_white[:, :200] = 255
    resized = to_blip_input(left_half_white)
    assert resized[:, :180].min() == 255 and resized[:, 204:].max() == 0


def test_a_batch_stacks_its_photos_in_order() -> None:
    batch = to_blip_batch([np.full((50, 80, 3), i, np.uint8) for i in range(3)])
    assert batch.shape == (3, BLIP_SIZE, BLIP_SIZE, 3)
    assert batch[:, 0, 0, 0].tolist() == [0, 1, 2]
    assert to_blip_batch([]).shape == (0, BLIP_SIZE, BLIP_SIZE, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_anything_but_a_non_empty_rgb_uint8_image_is_refused(bad) -> None:
    with pytest.raises(ValueError):
        to_blip_input(bad)


def test_the_gateway_side_imports_neither_torch_nor_transformers() -> None:
    for module in (blip_image, blip_session):
        imported = imported_packages(module)
        assert not imported & {"torch", "torchvision", "transformers", "tokenizers"}, module
