"""GFPGAN through a real tritonserver: the tiny synthetic variant, the face pre/post graphs and
the uint8 `restore_gfpgan_v1_4` ensemble on a real face crop, against the in-process pipeline.

The tiny variant is the same graph at the same 512×512 face size, served under the committed
configs unchanged."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.graphs import face_to_tensor_reference, tensor_to_face_reference
from export.models.gfpgan import TINY_FACE_SIZE, astronaut_face
from export.validate import open_session
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration

MODEL = "gfpgan_v1_4"
ENSEMBLE = "restore_gfpgan_v1_4"


@pytest.fixture(scope="module")
def tiny_gfpgan(tmp_path_factory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(
        tmp_path_factory.mktemp("gfpgan_repo"), [MODEL], tiny=True, weights="synthetic"
    )
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [MODEL, ENSEMBLE, "face_to_tensor", "tensor_to_face"]
    )
    return start_triton(root), root


def infer(
    url: str, model: str, name: str, array: np.ndarray, dtype: str, output: str
) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput(output)])
    return result.as_numpy(output)


def run_local(root: Path, face: np.ndarray) -> np.ndarray:
    # Same thread count as the committed config, so ORT sums in the same order.
    session = open_session(root / MODEL / "1" / "model.onnx", threads=2)
    return session.run(["restored"], {"face": face})[0]


def faces() -> np.ndarray:
    face = astronaut_face(TINY_FACE_SIZE)
    return np.ascontiguousarray(np.stack([face, face[:, ::-1]]))


def test_the_tiny_install_is_labelled_synthetic(tiny_gfpgan) -> None:
    _, root = tiny_gfpgan
    manifest = json.loads((root / MODEL / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["variant"] == "tiny"
    assert manifest["validation"][0]["passed"]


def test_served_float_model_equals_in_process_onnxruntime(tiny_gfpgan) -> None:
    server, root = tiny_gfpgan
    face = face_to_tensor_reference(faces()[:1])
    served = infer(server.grpc_url, MODEL, "face", face, "FP32", "restored")
    assert served.shape == (1, 3, TINY_FACE_SIZE, TINY_FACE_SIZE)
    np.testing.assert_allclose(served, run_local(root, face), rtol=0, atol=1e-6)


def test_uint8_ensemble_restores_a_real_face_like_the_in_process_pipeline(tiny_gfpgan) -> None:
    server, root = tiny_gfpgan
    batch = faces()
    served = infer(server.grpc_url, ENSEMBLE, "face", batch, "UINT8", "restored_face")
    expected = tensor_to_face_reference(run_local(root, face_to_tensor_reference(batch)))
    assert served.dtype == np.uint8 and served.shape == (2, TINY_FACE_SIZE, TINY_FACE_SIZE, 3)
    # Float sums may differ in the last bit between processes; rounding can then move a byte by 1.
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    assert np.mean(served == expected) > 0.999
    # Synthetic weights mean nothing, but the two faces of the batch are different inputs.
    assert not np.array_equal(served[0], served[1])


def test_triton_batches_concurrent_face_requests(tiny_gfpgan) -> None:
    server, _ = tiny_gfpgan
    client = grpcclient.InferenceServerClient(server.grpc_url)
    before = model_counts(client, MODEL)
    face = faces()[:1]
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: infer(server.grpc_url, ENSEMBLE, "face", face, "UINT8", "restored_face"),
                range(16),
            )
        )
    assert all(np.array_equal(r, results[0]) for r in results)
    inferences, executions = counts_since(client, MODEL, before, inferences=16)
    assert inferences == 16
    assert executions < inferences, "Triton ran every face alone: dynamic batching is off"


def test_ensemble_metadata_and_model_config(tiny_gfpgan) -> None:
    server, _ = tiny_gfpgan
    client = grpcclient.InferenceServerClient(server.grpc_url)
    metadata = client.get_model_metadata(ENSEMBLE, as_json=True)
    size = str(TINY_FACE_SIZE)
    assert metadata["inputs"] == [
        {"name": "face", "datatype": "UINT8", "shape": ["-1", size, size, "3"]}
    ]
    assert metadata["outputs"] == [
        {"name": "restored_face", "datatype": "UINT8", "shape": ["-1", size, size, "3"]}
    ]
    config = client.get_model_config(MODEL, as_json=True)["config"]
    # The committed config serves the runtime the spec plans (OpenVINO FP32, measured faster).
    assert config["backend"] == "facet_openvino" and config["max_batch_size"] == 4
    assert config["parameters"]["precision"]["string_value"] == "f32"
    assert config["dynamic_batching"]["preferred_batch_size"] == [2, 4]
