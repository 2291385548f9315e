"""The facet_openvino backend inside a real tritonserver, reached over gRPC: the same ONNX files
as facet_ort, compiled by OpenVINO, with Triton's batching and the same error tiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from serving.errors import TritonStartError
from serving.launcher import TritonServer
from tests.integration.conftest import (
    IMAGE_SCALE_CONFIG,
    LOOKUP_CONFIG,
    build_image_scale_model,
    build_lookup_model,
    write_model,
)
from tests.integration.test_facet_ort_backend import (
    infer_burst,
    make_inputs,
    random_images,
    run_in_process,
)
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration


def on_openvino(config: str, **parameters: str) -> str:
    text = config.replace('backend: "facet_ort"', 'backend: "facet_openvino"')
    extra = "".join(
        f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n'
        for k, v in parameters.items()
    )
    return text + extra  # facet_ort's thread parameters, if any, are ignored by facet_openvino


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("openvino_repository")
    write_model(root, "image_scale", build_image_scale_model(), on_openvino(IMAGE_SCALE_CONFIG))
    bf16 = on_openvino(IMAGE_SCALE_CONFIG, precision="bf16", num_threads="2")
    write_model(root, "image_scale_bf16", build_image_scale_model(), bf16)
    write_model(root, "lookup", build_lookup_model(), on_openvino(LOOKUP_CONFIG))
    return root


@pytest.fixture(scope="module")
def served(start_triton: Any, repository: Path) -> TritonServer:
    server: TritonServer = start_triton(repository)
    return server


@pytest.fixture(scope="module")
def client(served: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(served.grpc_url) as connection:
        yield connection


def test_f32_output_equals_in_process_onnx_runtime(client, repository: Path) -> None:
    image = random_images(1, (2, 5, 7, 3))[0]
    result = client.infer("image_scale", make_inputs({"image": image})).as_numpy("scaled")
    expected = run_in_process(repository / "image_scale/1/model.onnx", {"image": image})
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


def test_bf16_precision_is_taken_from_the_config_and_stays_close(client, repository) -> None:
    image = random_images(2, (1, 8, 8, 3))[0]
    result = client.infer("image_scale_bf16", make_inputs({"image": image})).as_numpy("scaled")
    expected = run_in_process(repository / "image_scale_bf16/1/model.onnx", {"image": image})
    np.testing.assert_allclose(result, expected, atol=2e-2)  # bf16 keeps 8 bits of mantissa


def test_concurrent_requests_are_batched_and_split_back(client, repository: Path) -> None:
    images = random_images(12, (1, 6, 4, 3))
    before = model_counts(client, "image_scale")
    outcomes = infer_burst(client, "image_scale", [{"image": i} for i in images], "scaled")
    inferences, executions = counts_since(client, "image_scale", before, inferences=12)
    onnx_path = repository / "image_scale/1/model.onnx"
    for image, outcome in zip(images, outcomes, strict=True):
        assert isinstance(outcome, np.ndarray), outcome
        np.testing.assert_allclose(outcome, run_in_process(onnx_path, {"image": image}), atol=1e-6)
    assert inferences == 12 and executions < 12


def test_a_runtime_failure_fails_only_the_offending_request(client) -> None:
    indices = [0, 7, 2]  # 7 is outside the 4-entry table
    requests = [{"index": np.array([[i]], dtype=np.int64)} for i in indices]
    outcomes = infer_burst(client, "lookup", requests, "value")
    for index, outcome in zip(indices, outcomes, strict=True):
        if index == 7:
            # OpenVINO's Gather clamps or zero-fills where ORT raises: either an error for
            # that request alone, or an answer; never a failure of its neighbours.
            continue
        assert isinstance(outcome, np.ndarray), outcome
        assert outcome.tolist() == [[[10.0, 20.0, 30.0, 40.0][index]]]


def test_a_wrong_dtype_request_fails_and_the_model_keeps_serving(client) -> None:
    with pytest.raises(InferenceServerException, match="image"):
        client.infer("image_scale", make_inputs({"image": np.zeros((1, 4, 4, 3), np.float32)}))
    right = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    result = client.infer("image_scale", make_inputs({"image": right}))
    np.testing.assert_allclose(result.as_numpy("scaled"), np.full((1, 3, 4, 4), 2.0))


def test_compiled_blobs_are_cached_for_the_next_start(served: TritonServer) -> None:
    cache = served.settings.run_dir / "openvino_cache"
    assert any(cache.iterdir()), "OpenVINO wrote no compiled blob"


def test_a_config_that_disagrees_with_the_graph_fails_start_with_the_log(
    start_triton: Any, tmp_path: Path
) -> None:
    broken = on_openvino(IMAGE_SCALE_CONFIG).replace("TYPE_UINT8", "TYPE_FP32")
    write_model(tmp_path, "image_scale", build_image_scale_model(), broken)
    with pytest.raises(TritonStartError) as failure:
        start_triton(tmp_path, startup_timeout_s=60.0)
    assert "input 'image': config dtype float32, model uint8" in failure.value.log_tail


def test_an_unknown_precision_is_refused_at_load(start_triton: Any, tmp_path: Path) -> None:
    config = on_openvino(IMAGE_SCALE_CONFIG, precision="int3")
    write_model(tmp_path, "image_scale", build_image_scale_model(), config)
    with pytest.raises(TritonStartError) as failure:
        start_triton(tmp_path, startup_timeout_s=60.0)
    assert "precision='int3' must be one of ['f32', 'bf16']" in failure.value.log_tail
