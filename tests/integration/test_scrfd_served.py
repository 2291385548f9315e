"""SCRFD through a real tritonserver: the tiny synthetic scrfd_10g under facet_ort and
face_detect_scrfd (BLS) over it, checked against the same decode run in-process on ORT."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.models.scrfd import OUTPUT_NAMES
from export.samples import astronaut
from export.validate import open_session
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.detector_calls import detect_faces

pytestmark = pytest.mark.integration

MODEL = "face_detect_scrfd"
DECODE = (
    Path(__file__).resolve().parents[2] / "model_repository/face_detect_scrfd/1/scrfd_decode.py"
)


def _decode_module() -> Any:
    spec = importlib.util.spec_from_file_location("scrfd_decode", DECODE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scrfd_decode"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(
        tmp_path_factory.mktemp("scrfd_repo"), [MODEL], tiny=True, weights="synthetic"
    )
    return start_triton(root), root


def detect(url: str, image: np.ndarray, **scalars: float) -> tuple[np.ndarray, ...]:
    return detect_faces(url, MODEL, image, **scalars)


@pytest.mark.parametrize("threshold", [0.4, 0.5])
def test_served_detections_equal_the_in_process_decode(served, threshold: float) -> None:
    server, root = served
    sd = _decode_module()
    image = np.ascontiguousarray(astronaut()[:300, :420])
    boxes, scores, landmarks = detect(server.grpc_url, image, score_threshold=threshold)
    k = len(scores)
    assert boxes.shape == (k, 4) and landmarks.shape == (k, 5, 2) and k > 0
    assert all(np.isfinite(a).all() for a in (boxes, scores, landmarks))
    assert np.all(scores >= threshold) and np.all(np.diff(scores) <= 0)
    assert np.all(np.abs(boxes) < 10 * max(image.shape))
    session = open_session(root / "scrfd_10g" / "1" / "model.onnx")
    batch, scale = sd.letterbox(image, 640)
    outputs = session.run(list(OUTPUT_NAMES), {"input.1": batch})
    want = sd.decode(outputs, 640, scale, threshold, 0.4)
    assert len(want.scores) == k
    np.testing.assert_allclose(scores, want.scores, atol=1e-5)
    np.testing.assert_allclose(boxes, want.boxes, atol=1e-2)
    np.testing.assert_allclose(landmarks, want.landmarks, atol=1e-2)
    print(f"{k} detections at threshold {threshold}")


def test_a_bad_request_is_refused_and_the_model_keeps_serving(served) -> None:
    server, _ = served
    client = grpcclient.InferenceServerClient(server.grpc_url)
    bad = grpcclient.InferInput("image", [4, 4, 3], "UINT8")
    bad.set_data_from_numpy(np.zeros((4, 4, 3), np.uint8))
    threshold = grpcclient.InferInput("score_threshold", [1], "FP32")
    threshold.set_data_from_numpy(np.array([2.0], np.float32))
    with pytest.raises(InferenceServerException, match="score_threshold"):
        client.infer(MODEL, [bad, threshold])
    boxes, scores, _ = detect(server.grpc_url, np.zeros((64, 48, 3), np.uint8))
    assert boxes.shape[1:] == (4,) and len(scores) == len(boxes)
