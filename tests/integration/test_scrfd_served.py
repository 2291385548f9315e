"""SCRFD through a real tritonserver: the tiny synthetic scrfd_10g under facet_ort and
face_detect_scrfd (BLS) over it, checked against the same decode run in-process on ORT."""

from __future__ import annotations

import importlib.util
import subprocess
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


INSIGHTFACE = "insightface==2.1"
PIP_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def insightface_scrfd(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """insightface's own SCRFD class, from its wheel on PyPI (pure Python, installed into a
    private folder without its dependencies), or a skip saying why it is unavailable."""
    target = tmp_path_factory.mktemp("insightface")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:"]
    command += ["--quiet", "--target", str(target), INSIGHTFACE]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot install {INSIGHTFACE} from PyPI: {exc}")
    sys.path.insert(0, str(target))
    try:
        from insightface.model_zoo.scrfd import SCRFD  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(target))
    return SCRFD


def test_letterbox_and_decode_match_insightfaces_own_detector(served, insightface_scrfd) -> None:
    """insightface's SCRFD.detect on the same tiny network is the reference: our letterbox must
    give its input (black padding, its sizes; within the uint8 rounding of cv2.resize), and our
    decode and NMS on that same input must give its detections."""
    _, root = served
    sd = _decode_module()
    model_file = root / "scrfd_10g" / "1" / "model.onnx"
    image = np.ascontiguousarray(astronaut()[:300, :420])
    threshold = 0.502  # the tiny random net scores everything near 0.5: keep a few hundred
    theirs = insightface_scrfd(model_file=str(model_file))
    theirs.prepare(-1, det_thresh=threshold, nms_thresh=0.4)
    seen: dict[str, np.ndarray] = {}
    forward = theirs.forward

    def keep_input(img: np.ndarray, thresh: float) -> Any:
        seen["canvas"] = img.copy()
        return forward(img, thresh)

    theirs.forward = keep_input
    found, points = theirs.detect(np.ascontiguousarray(image[..., ::-1]), input_size=(640, 640))
    their_input = theirs._prepare_input_blob(seen["canvas"], (640, 640))
    ours, scale = sd.letterbox(image, 640)
    assert ours.shape == their_input.shape
    assert np.abs(ours - their_input).max() <= 1.01 / 128  # cv2 rounds the resize to uint8
    content_rows = int(640 * 300 / 420)  # insightface truncates; below that is padding
    np.testing.assert_array_equal(ours[..., content_rows:, :], their_input[..., content_rows:, :])
    outputs = open_session(model_file).run(list(OUTPUT_NAMES), {"input.1": their_input})
    want = sd.decode(outputs, 640, scale, threshold, 0.4)
    assert len(want.scores) == len(found) > 0
    order = np.lexsort((found[:, 0], -found[:, 4]))
    mine = np.lexsort((want.boxes[:, 0], -want.scores))
    np.testing.assert_allclose(want.scores[mine], found[order, 4], atol=1e-6)
    np.testing.assert_allclose(want.boxes[mine], found[order, :4], atol=1e-3)
    np.testing.assert_allclose(want.landmarks[mine], points[order], atol=1e-3)
