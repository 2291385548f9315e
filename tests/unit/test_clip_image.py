"""The gateway's CLIP preprocessing (gateway/context/clip_image.py) against transformers'
CLIPImageProcessor (its PIL backend; the default backend needs torchvision): the same 224² uint8
pixels before the rescale and normalisation that run inside the graph."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from gateway.context import clip_image
from gateway.context.clip_image import CLIP_SIZE, resized_size, to_clip_batch, to_clip_input
from tests.imports import imported_packages
from tests.unit.image_processors import photo, processed

# Photos up to 4:1 are resized whole, as the processor does: byte for byte. Beyond, only the
# crop is resampled: a value may move by one level, on at most this share of them.
MAX_LEVELS_ELONGATED = 1
MAX_SHARE_ELONGATED = 0.001

SIZES = [(224, 224), (225, 224), (100, 100), (300, 1000), (1000, 300), (640, 480), (333, 777)]
ELONGATED = [(50, 7), (7, 50), (3, 600), (1200, 250), (20, 3000)]


@pytest.fixture(scope="module")
def processor():
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil()


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_real_photos_are_prepared_exactly_as_clip_image_processor(processor, name: str) -> None:
    rgb = np.ascontiguousarray(getattr(data, name)())
    ours = to_clip_input(rgb)
    assert ours.shape == (CLIP_SIZE, CLIP_SIZE, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, processed(processor, rgb))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_any_size_up_to_4_to_1_is_byte_identical(processor, height: int, width: int) -> None:
    rgb = photo(height, width, seed=height * 7 + width)
    np.testing.assert_array_equal(to_clip_input(rgb), processed(processor, rgb))


@pytest.mark.parametrize(("height", "width"), ELONGATED)
def test_elongated_photos_are_within_one_level(processor, height: int, width: int) -> None:
    rgb = photo(height, width, seed=height * 7 + width)
    delta = np.abs(to_clip_input(rgb).astype(int) - processed(processor, rgb).astype(int))
    assert delta.max() <= MAX_LEVELS_ELONGATED
    assert (delta > 0).mean() <= MAX_SHARE_ELONGATED


@pytest.mark.parametrize(("height", "width"), [*SIZES, *ELONGATED, (451, 300)])
def test_the_resized_size_is_transformers_rounding(height: int, width: int) -> None:
    from transformers.image_transforms import get_resize_output_image_size

    expected = get_resize_output_image_size(
        np.zeros((height, width, 3)), CLIP_SIZE, default_to_square=False,
        input_data_format="channels_last",
    )  # fmt: skip
    assert resized_size(height, width) == tuple(expected)


def test_a_batch_stacks_every_photo_and_an_empty_one_has_the_served_shape() -> None:
    batch = to_clip_batch([photo(300, 400, 1), photo(224, 224, 2)])
    assert batch.shape == (2, CLIP_SIZE, CLIP_SIZE, 3) and batch.dtype == np.uint8
    assert to_clip_batch([]).shape == (0, CLIP_SIZE, CLIP_SIZE, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_anything_but_an_rgb_uint8_image_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_clip_input(bad)


def test_the_module_imports_neither_torch_nor_transformers() -> None:
    assert imported_packages(clip_image) <= {"__future__", "numpy", "PIL"}
