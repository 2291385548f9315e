"""BLIP captioning through a real tritonserver: caption_blip runs the decoding loop inside
Triton over blip_vision / blip_decoder_first / blip_decoder_step, and its token ids must be
the ids transformers' BlipForConditionalGeneration.generate() gives on the same weights in this
process, greedy and with beam search. Triton's statistics show that a step sends every image
(× beams) of a request in one decoder execution.

The tiny variant runs by default (~20 s); the full synthetic model (224 M parameters: ~2.3 min
of export, then ~4 s a caption greedy and ~8 s with 3 beams on 2 cores; ~3.5 min in all) is
marked slow.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.models import blip
from export.models.blip import (
    BLIP_DECODER_FIRST,
    BLIP_DECODER_STEP,
    BLIP_VISION,
    DEFAULT_MAX_NEW_TOKENS,
    MAX_IMAGES,
    MAX_NEW_TOKENS_LIMIT,
    MAX_NUM_BEAMS,
)
from export.pipeline import ExportOptions, load_model
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

MODEL = "caption_blip"
STEP = BLIP_DECODER_STEP.name
NEW_TOKENS = 12


def graph_with_export_weights(tmp: Path, tiny: bool) -> blip.BlipGraph:
    """The model in this process with the synthetic weights the export installed."""
    options = ExportOptions(repository=tmp, weights="synthetic", tiny=tiny, show_progress=False)
    model, _ = load_model(BLIP_DECODER_STEP, "synthetic", options)
    assert isinstance(model, blip.BlipGraph)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(
        tmp_path_factory.mktemp("blip_tiny_repo"), [MODEL], tiny=True, weights="synthetic"
    )
    return start_triton(root), root


@pytest.fixture(scope="module")
def client(tiny) -> grpcclient.InferenceServerClient:
    server, _ = tiny
    return grpcclient.InferenceServerClient(server.grpc_url)


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory: pytest.TempPathFactory) -> blip.BlipGraph:
    return graph_with_export_weights(tmp_path_factory.mktemp("blip_tiny_weights"), tiny=True)


def caption(
    client: grpcclient.InferenceServerClient,
    images: np.ndarray,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
) -> tuple[list[str], np.ndarray]:
    tensor = grpcclient.InferInput("image", list(images.shape), "UINT8")
    tensor.set_data_from_numpy(images)
    inputs = [tensor]
    for name, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)):
        if value is not None:
            scalar = grpcclient.InferInput(name, [1], "INT32")
            scalar.set_data_from_numpy(np.array([value], np.int32))
            inputs.append(scalar)
    result = client.infer(MODEL, inputs)
    captions = [c.decode("utf-8") for c in result.as_numpy("caption").tolist()]
    return captions, result.as_numpy("token_ids")


def expected_ids(sequences: list[list[int]], width: int) -> np.ndarray:
    padded = np.zeros((len(sequences), width), np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


def generated(token_ids: np.ndarray) -> list[list[int]]:
    """Each row's ids up to and including its [SEP] (the rest is padding)."""
    rows = []
    for row in token_ids.tolist():
        ends = [i for i, token in enumerate(row) if token == blip.SEP_ID]
        rows.append(row[: ends[0] + 1] if ends else [t for t in row if t != blip.PAD_ID])
    return rows


@pytest.mark.parametrize("num_beams", [1, 3])
def test_served_ids_are_transformers_generate_ids_on_the_tiny_model(
    client, tiny_graph, num_beams
) -> None:
    images = blip.sample_images(4)
    captions, token_ids = caption(client, images, num_beams, NEW_TOKENS)
    theirs = blip.transformers_generate(tiny_graph, images, num_beams, NEW_TOKENS)
    print(f"num_beams {num_beams}: served {generated(token_ids)}")
    assert token_ids.dtype == np.int32 and token_ids.shape[0] == len(images)
    np.testing.assert_array_equal(token_ids, expected_ids(theirs, token_ids.shape[1]))
    assert len(captions) == len(images) and all(isinstance(c, str) for c in captions)
    assert len({tuple(s) for s in theirs}) > 1, "every photo got the same caption"


def test_each_greedy_step_is_one_decoder_execution_for_every_running_image(client) -> None:
    images = blip.sample_images(4)
    before = {name: model_counts(client, name) for name in (BLIP_VISION.name, STEP)}
    first_before = model_counts(client, BLIP_DECODER_FIRST.name)
    _, token_ids = caption(client, images, 1, NEW_TOKENS)
    lengths = [len(s) for s in generated(token_ids)]
    # Step s (2..longest) runs for the images whose caption is at least s tokens long.
    steps = range(2, max(lengths) + 1)
    rows = sum(sum(length >= s for length in lengths) for s in steps)
    inferences, executions = counts_since(client, STEP, before[STEP], inferences=rows)
    print(f"caption lengths {lengths}: {executions} step executions, {inferences} rows")
    assert (inferences, executions) == (rows, len(steps))
    assert counts_since(client, BLIP_DECODER_FIRST.name, first_before, inferences=4) == (4, 1)
    assert counts_since(client, BLIP_VISION.name, before[BLIP_VISION.name], inferences=4) == (4, 1)


def test_beam_search_sends_every_beam_of_every_image_together(client) -> None:
    images = blip.sample_images(3)
    before = model_counts(client, STEP)
    caption(client, images, 3, NEW_TOKENS)
    time.sleep(0.2)  # statistics follow the responses
    inferences, executions = counts_since(client, STEP, before, inferences=1)
    print(f"beam search: {executions} step executions, {inferences} rows")
    assert 1 <= executions <= NEW_TOKENS - 1
    assert inferences % 3 == 0 and inferences > 3 * executions  # several images per execution


def test_defaults_are_the_configs_greedy_and_twenty_new_tokens(client) -> None:
    images = blip.sample_images(2)
    default_captions, default_ids = caption(client, images)
    explicit_captions, explicit_ids = caption(client, images, 1, DEFAULT_MAX_NEW_TOKENS)
    np.testing.assert_array_equal(default_ids, explicit_ids)
    assert default_captions == explicit_captions
    assert default_ids.shape[1] <= DEFAULT_MAX_NEW_TOKENS == 20
    parameters = client.get_model_config(MODEL).config.parameters
    assert parameters["default_num_beams"].string_value == "1"
    assert parameters["default_max_new_tokens"].string_value == str(DEFAULT_MAX_NEW_TOKENS)


@pytest.mark.parametrize(
    ("count", "options", "message"),
    [
        (1, {"num_beams": 0}, "num_beams must be a whole number"),
        (1, {"num_beams": MAX_NUM_BEAMS + 1}, "num_beams must be a whole number"),
        (1, {"max_new_tokens": MAX_NEW_TOKENS_LIMIT + 1}, "max_new_tokens must be"),
        (MAX_IMAGES + 1, {}, "images in one request"),
    ],
)
def test_requests_beyond_the_limits_are_refused_with_the_reason(
    client, count, options, message
) -> None:
    images = np.zeros((count, blip.IMAGE_SIZE, blip.IMAGE_SIZE, 3), np.uint8)
    with pytest.raises(InferenceServerException, match=message) as raised:
        caption(client, images, **options)
    assert "INVALID_ARG" in str(raised.value.status())


def test_an_empty_request_answers_no_captions(client) -> None:
    captions, token_ids = caption(client, np.zeros((0, 384, 384, 3), np.uint8))
    assert captions == [] and token_ids.shape[0] == 0


def test_concurrent_requests_caption_as_they_do_alone(client, tiny) -> None:
    server, _ = tiny
    images = blip.sample_images(4)
    alone = [caption(client, images[i : i + 1], 3, 8)[1] for i in range(4)]

    def one(index: int) -> np.ndarray:
        own = grpcclient.InferenceServerClient(server.grpc_url)
        return caption(own, images[index : index + 1], 3, 8)[1]

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(one, range(4)))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_metadata_names_what_grpc_clients_send(client) -> None:
    metadata = client.get_model_metadata(MODEL, as_json=True)
    assert metadata["inputs"] == [
        {"name": "image", "datatype": "UINT8", "shape": ["-1", "384", "384", "3"]},
        {"name": "num_beams", "datatype": "INT32", "shape": ["1"]},
        {"name": "max_new_tokens", "datatype": "INT32", "shape": ["1"]},
    ]
    assert metadata["outputs"] == [
        {"name": "caption", "datatype": "BYTES", "shape": ["-1"]},
        {"name": "token_ids", "datatype": "INT32", "shape": ["-1", "-1"]},
    ]
    composed = client.get_model_config(MODEL).config.parameters["composed_of"].string_value
    assert composed.split(",") == [BLIP_VISION.name, BLIP_DECODER_FIRST.name, STEP]


@pytest.mark.slow
def test_the_full_synthetic_model_served_gives_transformers_generate_ids(
    tmp_path_factory: pytest.TempPathFactory, start_triton
) -> None:
    """BLIP base at full size (synthetic weights: the offline default), exported with its
    checks against transformers, served, and compared with generate() in this process."""
    root = build_repository(tmp_path_factory.mktemp("blip_full_repo"), [MODEL], weights="synthetic")
    for name in (BLIP_VISION.name, BLIP_DECODER_FIRST.name, STEP):
        manifest = json.loads((root / name / "manifest.json").read_text())
        checks = [c for c in manifest["validation"] if c["check"] == "onnxruntime_vs_transformers"]
        assert checks and all(c["passed"] for c in checks), name
        print(f"{name}: ONNX vs transformers max |Δ| {max(c['value'] for c in checks):.3g}")
    server = start_triton(root)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    model = graph_with_export_weights(tmp_path_factory.mktemp("blip_full_weights"), tiny=False)
    images = blip.sample_images(2)
    for num_beams in (1, 3):
        started = time.perf_counter()
        captions, token_ids = caption(grpc, images, num_beams, NEW_TOKENS)
        served_s = time.perf_counter() - started
        theirs = blip.transformers_generate(model, images, num_beams, NEW_TOKENS)
        print(
            f"full, num_beams {num_beams}: {served_s:.1f} s for {len(images)} images, "
            f"ids {generated(token_ids)}, captions {captions}"
        )
        np.testing.assert_array_equal(token_ids, expected_ids(theirs, token_ids.shape[1]))
