"""SCRFD pre/post-processing (model_repository/face_detect_scrfd/1/scrfd_decode.py) outside
Triton, the official-ONNX install path, and the tiny network against its own decode."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from export.errors import WeightsError
from export.models.scrfd import OUTPUT_NAMES, SCRFD_10G
from export.pipeline import ExportOptions, export_any, rename_outputs

DECODE_PATH = (
    Path(__file__).resolve().parents[2] / "model_repository/face_detect_scrfd/1/scrfd_decode.py"
)


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("scrfd_decode", DECODE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scrfd_decode"] = module
    spec.loader.exec_module(module)
    return module


sd = _load()


def _outputs(size: int, faces: dict[tuple[int, int], tuple[float, ...]]) -> list[np.ndarray]:
    """Zero outputs for a size×size input, with chosen anchors (stride, index) set to a score
    and box distances (l, t, r, b) in stride units; keypoints at the anchor centre."""
    scores, boxes, kps = [], [], []
    for stride in sd.STRIDES:
        count = (size // stride) ** 2 * sd.ANCHORS
        score, box = np.zeros((count, 1), np.float32), np.zeros((count, 4), np.float32)
        for (s, index), (value, *dist) in faces.items():
            if s == stride:
                score[index, 0], box[index] = value, dist
        scores.append(score)
        boxes.append(box)
        kps.append(np.zeros((count, 10), np.float32))
    return [*scores, *boxes, *kps]


def test_anchor_centres_repeat_per_location_row_major() -> None:
    centres = sd.anchor_centres(32, 32, 16)
    assert centres.shape == (8, 2)
    np.testing.assert_array_equal(centres[:4], [[0, 0], [0, 0], [16, 0], [16, 0]])
    np.testing.assert_array_equal(centres[4], [0, 16])


def test_decode_places_boxes_and_landmarks_and_scales_back() -> None:
    # Stride 8, location (x=2, y=1) of an 64-wide input: index (1 * 8 + 2) * 2 = 20.
    outputs = _outputs(64, {(8, 20): (0.9, 1, 2, 3, 4), (32, 0): (0.3, 1, 1, 1, 1)})
    found = sd.decode(outputs, 64, 0.5, 0.5, 0.4)
    assert found.boxes.shape == (1, 4) and found.landmarks.shape == (1, 5, 2)
    np.testing.assert_allclose(found.boxes[0], np.array([16 - 8, 8 - 16, 16 + 24, 8 + 32]) / 0.5)
    np.testing.assert_allclose(found.landmarks[0], np.tile([32.0, 16.0], (5, 1)))
    np.testing.assert_allclose(found.scores, [0.9])
    assert len(sd.decode(outputs, 64, 0.5, 0.2, 0.4).scores) == 2


def test_decode_refuses_outputs_that_do_not_fit_the_input_size() -> None:
    with pytest.raises(ValueError, match="anchors"):
        sd.decode(_outputs(64, {}), 128, 1.0, 0.5, 0.4)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = sd.nms(boxes, np.array([0.8, 0.9, 0.7], np.float32), 0.4)
    assert keep.tolist() == [1, 2]
    assert sd.nms(np.zeros((0, 4)), np.zeros(0), 0.4).tolist() == []


def test_letterbox_keeps_the_ratio_pads_bottom_right_with_black_and_round_trips() -> None:
    image = np.full((100, 200, 3), 255, np.uint8)
    batch, scale = sd.letterbox(image, 640)
    assert batch.shape == (1, 3, 640, 640) and batch.dtype == np.float32 and scale == 3.2
    assert np.allclose(batch[0, :, :320, :], 127.5 / 128)
    assert np.allclose(batch[0, :, 320:, :], -127.5 / 128)  # black, as insightface pads
    # A point at input pixel p maps back to p / scale: the far corner of the content.
    assert np.isclose(640 / scale, 200) and np.isclose(320 / scale, 100)


def test_resize_bilinear_is_exact_on_constant_and_identity() -> None:
    ramp = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    np.testing.assert_array_equal(sd.resize_bilinear(ramp, 3, 4), ramp)


def _tiny() -> np.ndarray:
    return SCRFD_10G.sample_for(tiny=True)


def test_official_onnx_is_renamed_by_position_and_checked_by_hash(tmp_path: Path) -> None:
    """A stand-in for det_10g.onnx: the tiny export with upstream-style numeric output names."""
    options = ExportOptions(tmp_path / "repo", "synthetic", tmp_path / "w", True, False, False)
    export_any(SCRFD_10G, options)
    model = onnx.load(str(tmp_path / "repo" / SCRFD_10G.name / "1" / "model.onnx"))
    rename_outputs(model, [str(448 + i) for i in range(9)])
    (tmp_path / "w").mkdir()
    path = tmp_path / "w" / "det_10g.onnx"
    onnx.save(model, str(path))
    from export.hashing import sha256_of

    assert SCRFD_10G.official is not None
    official = dataclasses.replace(SCRFD_10G.official, sha256=sha256_of(path))
    spec = dataclasses.replace(SCRFD_10G, official=official, sample=_tiny)
    auto = dataclasses.replace(options, weights="auto", repository=tmp_path / "repo2")
    outcome = export_any(spec, auto)
    assert outcome.weights_kind == "official"
    manifest = json.loads(outcome.manifest.read_text())
    assert (
        manifest["weights_kind"] == "official" and "non-commercial" in manifest["weights_licence"]
    )
    installed = onnx.load(str(tmp_path / "repo2" / SCRFD_10G.name / "1" / "model.onnx"))
    assert [o.name for o in installed.graph.output] == list(OUTPUT_NAMES)
    with pytest.raises(Exception, match="sha256"):
        export_any(SCRFD_10G, dataclasses.replace(auto, repository=tmp_path / "repo3"))


def test_official_onnx_is_never_downloaded(tmp_path: Path) -> None:
    from export.weights import load_official_onnx

    with pytest.raises(WeightsError, match=r"place det_10g\.onnx"):
        load_official_onnx(SCRFD_10G, tmp_path)
