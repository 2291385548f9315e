"""NanoDet pre/post-processing (model_repository/detect_objects/1/nanodet_decode.py) outside
Triton, and the nanodet_coco / detect_objects specs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from export.models.nanodet import COCO_80, DETECT_OBJECTS, NANODET_COCO, PACKAGE, STRIDES

DECODE_PATH = (
    Path(__file__).resolve().parents[2] / "model_repository/detect_objects/1/nanodet_decode.py"
)
SIZE, REG_MAX = 416, 10


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("nanodet_decode", DECODE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nanodet_decode"] = module
    spec.loader.exec_module(module)
    return module


nd = _load()


def _peaked(sides: tuple[int, int, int, int]) -> np.ndarray:
    """Box-bin logits whose distributions are sharp at the given bins (left, top, right,
    bottom)."""
    logits = np.full((4, REG_MAX + 1), -30.0, np.float32)
    for side, index in enumerate(sides):
        logits[side, index] = 30.0
    return logits.reshape(-1)


def _outputs(
    objects: list[tuple[int, int, int, float, tuple[int, int, int, int]]],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Empty network outputs with chosen (stride, location, class, score, bins) set."""
    scores = [np.zeros((1, (SIZE // s) ** 2, 80), np.float32) for s in STRIDES]
    bins = [np.zeros((1, (SIZE // s) ** 2, 44), np.float32) for s in STRIDES]
    for stride, location, label, score, sides in objects:
        level = STRIDES.index(stride)
        scores[level][0, location, label] = score
        bins[level][0, location] = _peaked(sides)
    return scores, bins


def _decode(
    scores: list[np.ndarray],
    bins: list[np.ndarray],
    image_size: tuple[int, int] = (SIZE, SIZE),
    threshold: float = 0.35,
    limit: int = 100,
) -> Any:
    return nd.decode(scores, bins, STRIDES, SIZE, REG_MAX, image_size, threshold, 0.6, limit)


def test_box_sides_are_the_softmax_expectation_times_the_stride() -> None:
    sharp = nd.distances(_peaked((0, 3, 10, 5))[None], REG_MAX, 16)
    np.testing.assert_allclose(sharp, [[0, 48, 160, 80]], atol=1e-4)
    flat = nd.distances(np.zeros((1, 44), np.float32), REG_MAX, 8)
    np.testing.assert_allclose(flat, [[40, 40, 40, 40]], atol=1e-5)  # mean of 0..10 is 5


def test_location_centres_are_half_a_stride_in_and_row_major() -> None:
    points = nd.centres(SIZE, 32)
    assert points.shape == (169, 2)
    np.testing.assert_array_equal(points[:2], [[16, 16], [48, 16]])
    np.testing.assert_array_equal(points[13], [16, 48])


def test_one_object_decodes_to_its_box_scaled_to_the_image() -> None:
    grid = SIZE // 16
    location = 5 * grid + 7  # row 5, column 7: centre (120, 88)
    scores, bins = _outputs([(16, location, 2, 0.9, (1, 2, 3, 4))])
    found = _decode(scores, bins, image_size=(832, 208))
    np.testing.assert_allclose(found.boxes, [[2 * 104, 56 / 2, 2 * 168, 152 / 2]], atol=1e-3)
    np.testing.assert_allclose(found.scores, [0.9])
    assert found.labels.tolist() == [2] and found.labels.dtype == np.int32


def test_nms_is_per_class_and_keeps_the_best_box_of_each() -> None:
    same = (3, 3, 3, 3)
    scores, bins = _outputs(
        [
            (8, 100, 0, 0.8, same),
            (8, 101, 0, 0.9, same),  # the next location: the same object, a better score
            (8, 100, 5, 0.7, same),  # another class at the same place is kept
        ]
    )
    found = _decode(scores, bins)
    assert found.labels.tolist() == [0, 5]
    np.testing.assert_allclose(found.scores, [0.9, 0.7])


def test_the_threshold_is_strict_and_the_count_bounded() -> None:
    scores, bins = _outputs([(32, i * 20, 1, 0.5, (1, 1, 1, 1)) for i in range(5)])
    assert len(_decode(scores, bins, threshold=0.5).scores) == 0
    assert len(_decode(scores, bins, threshold=0.4).scores) == 5
    assert len(_decode(scores, bins, threshold=0.4, limit=2).scores) == 2


def test_boxes_are_clipped_to_the_image() -> None:
    scores, bins = _outputs([(32, 84, 0, 0.9, (10, 10, 10, 10))])  # 320 px from (208, 208)
    found = _decode(scores, bins, image_size=(100, 50))
    np.testing.assert_allclose(found.boxes, [[0, 0, 100, 50]], atol=1e-4)


def test_no_candidate_gives_empty_arrays_of_the_served_shapes() -> None:
    scores, bins = _outputs([])
    found = _decode(scores, bins)
    assert found.boxes.shape == (0, 4) and found.scores.shape == (0,) and found.labels.shape == (0,)


def test_preprocessing_is_a_half_pixel_bilinear_resize_to_unit_range() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8)
    batch, size = nd.preprocess(image, SIZE)
    assert batch.shape == (1, 3, SIZE, SIZE) and batch.dtype == np.float32 and size == (500, 300)
    want = cv2.resize(image.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(batch[0].transpose(1, 2, 0) * 255, want, atol=1e-3)


def test_the_specs_agree_on_names_shapes_and_classes() -> None:
    assert len(COCO_80) == 80 and COCO_80[0] == "person" and len(set(COCO_80)) == 80
    parameters = dict(DETECT_OBJECTS.parameters)
    assert json.loads(parameters["label_names"]) == list(COCO_80)
    assert DETECT_OBJECTS.requires == (NANODET_COCO.name,) == (parameters["net_model"],)
    assert [t.name for t in NANODET_COCO.outputs] == [
        f"{kind}_{s}" for kind in ("scores", "box_bins") for s in STRIDES
    ]
    for tensor in NANODET_COCO.outputs:
        stride = int(tensor.name.rsplit("_", 1)[1])
        assert tensor.dims[0] == (SIZE // stride) ** 2
    tarball, *inside = NANODET_COCO.source_files()
    assert tarball.sha256 == PACKAGE.sha256 and len(inside) == len(NANODET_COCO.files)
