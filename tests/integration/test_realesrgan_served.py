"""Real-ESRGAN through a real tritonserver: the committed configs, the uint8 ensembles, dynamic
batching, and the real x4plus weights checked against the original ncnn files."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.graphs import image_to_tensor_reference, tensor_to_image_reference
from export.models.realesrgan import REALESRGAN_X4PLUS, reference_image
from export.samples import astronaut_crop, psnr
from export.validate import open_session
from serving.launcher import TritonServer
from tests.integration.conftest import SR_MODELS, build_repository
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_sr(tiny_sr_repository: Path, start_triton) -> tuple[TritonServer, Path]:
    return start_triton(tiny_sr_repository), tiny_sr_repository


def infer(
    url: str, model: str, name: str, array: np.ndarray, dtype: str, output: str
) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput(output)])
    return result.as_numpy(output)


def run_local(root: Path, model: str, low_res: np.ndarray) -> np.ndarray:
    # Same thread count as the committed config, so ORT sums in the same order.
    session = open_session(root / model / "1" / "model.onnx", threads=2)
    return session.run(["high_res"], {"low_res": low_res})[0]


@pytest.mark.parametrize("model", SR_MODELS)
def test_served_float_model_equals_in_process_onnxruntime(tiny_sr, model) -> None:
    server, root = tiny_sr
    low_res = image_to_tensor_reference(astronaut_crop(32)[None])
    served = infer(server.grpc_url, model, "low_res", low_res, "FP32", "high_res")
    assert served.shape == (1, 3, 128, 128)
    np.testing.assert_allclose(served, run_local(root, model, low_res), rtol=0, atol=1e-6)


@pytest.mark.parametrize("model", SR_MODELS)
def test_uint8_ensemble_upscales_a_photo_tile_like_the_in_process_pipeline(tiny_sr, model) -> None:
    server, root = tiny_sr
    tiles = np.stack([astronaut_crop(32), astronaut_crop(32)[:, ::-1]]).copy()
    served = infer(server.grpc_url, f"upscale_{model}", "image", tiles, "UINT8", "upscaled_image")
    expected = tensor_to_image_reference(run_local(root, model, image_to_tensor_reference(tiles)))
    assert served.dtype == np.uint8 and served.shape == (2, 128, 128, 3)
    # Float sums may differ in the last bit between processes; rounding can then move a byte by 1.
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    assert np.mean(served == expected) > 0.999


def test_triton_batches_concurrent_tile_requests(tiny_sr) -> None:
    server, _ = tiny_sr
    client = grpcclient.InferenceServerClient(server.grpc_url)
    model = "realesrgan_x4plus"
    before = model_counts(client, model)
    tile = image_to_tensor_reference(astronaut_crop(48)[None])
    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(
                lambda _: infer(server.grpc_url, model, "low_res", tile, "FP32", "high_res"),
                range(32),
            )
        )
    assert all(r.shape == (1, 3, 192, 192) for r in results)
    inferences, executions = counts_since(client, model, before, inferences=32)
    assert inferences == 32
    assert executions < inferences, "Triton ran every request alone: dynamic batching is off"


def test_tritonclient_metadata_and_config_describe_the_uint8_ensemble(tiny_sr) -> None:
    server, _ = tiny_sr
    client = grpcclient.InferenceServerClient(server.grpc_url)
    metadata = client.get_model_metadata("upscale_realesrgan_x4plus", as_json=True)
    assert metadata["inputs"] == [
        {"name": "image", "datatype": "UINT8", "shape": ["-1", "-1", "-1", "3"]}
    ]
    assert metadata["outputs"][0]["datatype"] == "UINT8"
    config = client.get_model_config("realesrgan_x4plus", as_json=True)["config"]
    assert config["backend"] == "facet_ort"
    assert config["dynamic_batching"]["default_queue_policy"]["max_queue_size"] == 32


@pytest.mark.slow
def test_real_x4plus_served_matches_the_original_ncnn_files(tmp_path_factory, start_triton) -> None:
    root = build_repository(
        tmp_path_factory.mktemp("x4plus_repo"), ["realesrgan_x4plus"], weights="package"
    )
    manifest = json.loads((root / "realesrgan_x4plus" / "manifest.json").read_text())
    assert manifest["weights_kind"] == "package" and manifest["synthetic"] is False
    assert "BSD-3-Clause" in manifest["weights_licence"]
    assert [c["passed"] for c in manifest["validation"]] == [True, True]

    server = start_triton(root)
    photo = reference_image()
    served = infer(
        server.grpc_url,
        "upscale_realesrgan_x4plus",
        "image",
        photo[None].copy(),
        "UINT8",
        "upscaled_image",
    )[0]
    assert REALESRGAN_X4PLUS.reference is not None
    ncnn = np.round(np.clip(REALESRGAN_X4PLUS.reference.run(photo), 0, 1) * 255).astype(np.uint8)
    quality = psnr(served, ncnn)
    print(f"served x4plus vs ncnn on the {photo.shape[0]}px astronaut: {quality:.2f} dB")
    assert served.shape == (4 * photo.shape[0], 4 * photo.shape[1], 3)
    assert quality >= 40.0
    # Agreeing with ncnn is not enough if both were wrong: the output, subsampled back to the
    # input grid, must still look like the photo.
    assert psnr(served[::4, ::4], photo) > 20.0
