"""The face-swap models through a real tritonserver: tiny synthetic arcface_w600k_r50,
swap_latent and inswapper_128 under the committed configs, with their uint8 ensembles
(embed_arcface_w600k_r50, swap_inswapper_128), each against ONNX Runtime on the same file
in-process, and Triton batching faces of concurrent requests into one execution.

The tiny variants keep the full models' I/O (112² and 128² faces, 512-d vectors), so the
committed configs serve them unchanged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.graphs import (
    face_to_tensor_reference,
    image_to_tensor_reference,
    tensor_to_image_reference,
)
from export.models.gfpgan import astronaut_face
from export.models.inswapper import validation_embeddings, validation_latents
from export.validate import open_session
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration

MODELS = ["arcface_w600k_r50", "swap_latent", "inswapper_128"]
EMBED = "embed_arcface_w600k_r50"
SWAP = "swap_inswapper_128"
# Same threads as the committed configs, so ORT sums in the same order in both processes.
THREADS = {"arcface_w600k_r50": 2, "swap_latent": 1, "inswapper_128": 2}
Tensors = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def served(tmp_path_factory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(
        tmp_path_factory.mktemp("swap_repo"), MODELS, tiny=True, weights="synthetic"
    )
    steps = ["face_to_tensor", "image_to_tensor", "tensor_to_image"]
    assert sorted(p.name for p in root.iterdir()) == sorted([*MODELS, *steps, EMBED, SWAP])
    return start_triton(root), root


def infer(url: str, model: str, inputs: Tensors, output: str) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensors = []
    for name, array in inputs.items():
        dtype = "UINT8" if array.dtype == np.uint8 else "FP32"
        tensor = grpcclient.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(model, tensors, outputs=[grpcclient.InferRequestedOutput(output)])
    return result.as_numpy(output)


def run_local(root: Path, model: str, inputs: Tensors) -> np.ndarray:
    session = open_session(root / model / "1" / "model.onnx", threads=THREADS[model])
    return session.run(None, inputs)[0]


def faces(size: int) -> np.ndarray:
    """Two different real faces, uint8 NHWC: the astronaut and her mirror image."""
    face = astronaut_face(size)
    return np.ascontiguousarray(np.stack([face, face[:, ::-1]]))


def test_served_arcface_equals_in_process_onnxruntime(served) -> None:
    server, root = served
    face = face_to_tensor_reference(faces(112))
    embedding = infer(server.grpc_url, "arcface_w600k_r50", {"face": face}, "embedding")
    assert embedding.shape == (2, 512) and embedding.dtype == np.float32
    local = run_local(root, "arcface_w600k_r50", {"face": face})
    np.testing.assert_allclose(embedding, local, rtol=0, atol=1e-6)


def test_served_swap_latent_equals_in_process_onnxruntime(served) -> None:
    server, root = served
    embedding = validation_embeddings(2)
    latent = infer(server.grpc_url, "swap_latent", {"embedding": embedding}, "latent")
    np.testing.assert_allclose(latent, run_local(root, "swap_latent", {"embedding": embedding}))
    np.testing.assert_allclose(np.linalg.norm(latent, axis=1), 1.0, atol=1e-5)


def test_served_inswapper_equals_in_process_onnxruntime(served) -> None:
    server, root = served
    inputs = {"target": image_to_tensor_reference(faces(128)), "source": validation_latents(2)}
    swapped = infer(server.grpc_url, "inswapper_128", inputs, "swapped")
    assert swapped.shape == (2, 3, 128, 128)
    np.testing.assert_allclose(swapped, run_local(root, "inswapper_128", inputs), atol=1e-6)


def test_the_embed_ensemble_takes_uint8_faces_to_the_float_embedding(served) -> None:
    server, root = served
    batch = faces(112)
    embedding = infer(server.grpc_url, EMBED, {"face": batch}, "embedding")
    local = run_local(root, "arcface_w600k_r50", {"face": face_to_tensor_reference(batch)})
    np.testing.assert_allclose(embedding, local, rtol=0, atol=1e-6)
    assert not np.allclose(embedding[0], embedding[1])  # different faces, different vectors


def test_the_swap_ensemble_swaps_uint8_faces_like_the_in_process_pipeline(served) -> None:
    server, root = served
    targets, latents = faces(128), validation_latents(2)
    swapped = infer(server.grpc_url, SWAP, {"target": targets, "source": latents}, "swapped_face")
    inputs = {"target": image_to_tensor_reference(targets), "source": latents}
    expected = tensor_to_image_reference(run_local(root, "inswapper_128", inputs))
    assert swapped.dtype == np.uint8 and swapped.shape == (2, 128, 128, 3)
    # Float sums may differ in the last bit between processes; rounding can then move a byte.
    assert np.abs(swapped.astype(int) - expected.astype(int)).max() <= 1
    assert np.mean(swapped == expected) > 0.999


def concurrently(url: str, model: str, inputs: Tensors, output: str, calls: int) -> list:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: infer(url, model, inputs, output), range(calls)))


@pytest.mark.parametrize(
    ("ensemble", "model", "output"),
    [(EMBED, "arcface_w600k_r50", "embedding"), (SWAP, "inswapper_128", "swapped_face")],
)
def test_triton_batches_the_faces_of_concurrent_requests(served, ensemble, model, output) -> None:
    server, _ = served
    client = grpcclient.InferenceServerClient(server.grpc_url)
    if ensemble == EMBED:
        inputs: Tensors = {"face": faces(112)[:1]}
    else:
        inputs = {"target": faces(128)[:1], "source": validation_latents(1)}
    before = model_counts(client, model)
    results = concurrently(server.grpc_url, ensemble, inputs, output, calls=16)
    assert all(np.array_equal(r, results[0]) for r in results)
    inferences, executions = counts_since(client, model, before, inferences=16)
    assert inferences == 16
    assert executions < inferences, f"Triton ran every {model} request alone"


def test_the_ensembles_metadata_names_the_tensors_the_gateway_sends(served) -> None:
    server, _ = served
    client = grpcclient.InferenceServerClient(server.grpc_url)
    embed = client.get_model_metadata(EMBED, as_json=True)
    assert embed["inputs"] == [
        {"name": "face", "datatype": "UINT8", "shape": ["-1", "112", "112", "3"]}
    ]
    assert embed["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": ["-1", "512"]}]
    swap = client.get_model_metadata(SWAP, as_json=True)
    assert swap["inputs"] == [
        {"name": "target", "datatype": "UINT8", "shape": ["-1", "128", "128", "3"]},
        {"name": "source", "datatype": "FP32", "shape": ["-1", "512"]},
    ]
    assert swap["outputs"] == [
        {"name": "swapped_face", "datatype": "UINT8", "shape": ["-1", "128", "128", "3"]}
    ]
    config = client.get_model_config("inswapper_128", as_json=True)["config"]
    assert config["max_batch_size"] == 8
    assert config["parameters"]["weights_kind"]["string_value"] == "synthetic"
