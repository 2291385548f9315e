"""CLIP ViT-B/32 served by a real tritonserver: photos prepared by the gateway's preprocessing
through `clip_vit_b32_visual` and strings through `embed_clip_text` (tokenised inside Triton),
against transformers' CLIP modules run in this process with the same weights; batching seen in
Triton's statistics; the gateway's TritonClip session against the server.

The tiny variants serve behind the committed configs in seconds; the full towers (synthetic
weights, ~150 M parameters) are the `slow` test, checked against CLIPModel.get_image_features
and get_text_features themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from export.models import clip
from export.models.clip import EMBEDDING_SIZE, MAX_TEXT_BYTES, TEXTS
from gateway.context.clip_image import to_clip_batch
from gateway.context.clip_session import TritonClip
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from serving.launcher import TritonServer
from tests.integration.conftest import build_repository
from tests.integration.text_embedding_calls import TextModelChecks, embed_strings, parity
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

VISUAL = "clip_vit_b32_visual"
TEXTUAL = "clip_vit_b32_textual"
EMBED = "embed_clip_text"
# Served (ONNX Runtime) vs PyTorch in this process, unit vectors: measured max |Δ| ~1e-7.
MAX_ABS = 1e-5
MIN_COSINE = 0.99999
CAPTIONS = [
    "a photo of a cat",
    "a photo of an astronaut",
    "a cup of coffee",
    "two dogs playing in the snow",
    "a bowl of soup on the table",
    "a man riding a bicycle down the street",
    "the skyline of a city at night",
    "a child reading a book",
    "a red car parked by the sea",
    "a plate of pasta",
]


def photos() -> list[np.ndarray]:
    return list(clip.reference_photos())


def embed_images(client: grpcclient.InferenceServerClient, batch: np.ndarray) -> np.ndarray:
    tensor = grpcclient.InferInput("image", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    outputs = [grpcclient.InferRequestedOutput("embedding")]
    return client.infer(VISUAL, [tensor], outputs=outputs).as_numpy("embedding")


def transformers_image_features(visual: Any, images: list[np.ndarray]) -> np.ndarray:
    """transformers' CLIPVisionModel with the served weights, on CLIPImageProcessor's pixel
    values of the original photos, projected and normalised (get_image_features' path)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(**dict(visual.vision_model.config.to_dict()))
    vision: Any = CLIPVisionModel(config)
    vision.load_state_dict(visual.vision_model.state_dict())
    vision.eval()
    pixels = clip.image_processor()(images, return_tensors="pt", input_data_format="channels_last")
    with torch.no_grad():
        pooled = vision(pixel_values=pixels["pixel_values"]).pooler_output
        vectors = torch.nn.functional.normalize(visual.visual_projection(pooled), dim=1)
    return np.asarray(vectors.numpy(), np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, start_triton) -> tuple[TritonServer, Path]:
    root = build_repository(
        tmp_path_factory.mktemp("clip_tiny_repo"),
        [EMBED, VISUAL],
        tiny=True,
        weights="synthetic",
    )
    assert sorted(p.name for p in root.iterdir()) == [TEXTUAL, VISUAL, EMBED]
    return start_triton(root), root


@pytest.fixture(scope="module")
def client(tiny) -> grpcclient.InferenceServerClient:
    server, _ = tiny
    return grpcclient.InferenceServerClient(server.grpc_url)


@pytest.fixture(scope="module")
def tiny_modules() -> tuple[Any, Any]:
    """The tiny towers with the weights the synthetic export installs."""
    return (
        clip._synthetic_module(clip.CLIP_VIT_B32_VISUAL.build_tiny),
        clip._synthetic_module(clip.CLIP_VIT_B32_TEXTUAL.build_tiny),
    )


def test_the_tiny_install_says_synthetic_and_ships_the_tokenizer(tiny, client) -> None:
    _, root = tiny
    for model in (VISUAL, TEXTUAL):
        manifest = json.loads((root / model / "manifest.json").read_text())
        assert manifest["synthetic"] is True and manifest["variant"] == "tiny"
        config = client.get_model_config(model).config
        assert config.parameters["weights_kind"].string_value == "synthetic"
    assert (root / EMBED / "1" / "tokenizer.json").is_file()
    assert client.get_model_config(EMBED).config.parameters["composed_of"].string_value == TEXTUAL


def test_served_photos_embed_as_transformers_does_on_the_processors_pixels(
    client, tiny_modules
) -> None:
    visual, _ = tiny_modules
    images = photos()
    ours = embed_images(client, to_clip_batch(images))
    assert ours.shape == (3, EMBEDDING_SIZE) and ours.dtype == np.float32
    error, cosine = parity(ours, transformers_image_features(visual, images))
    print(f"tiny visual served vs transformers: max |Δ| {error:.3g}, lowest cosine {cosine:.9f}")
    assert error <= MAX_ABS and cosine >= MIN_COSINE


def test_served_strings_embed_as_the_text_tower_does_on_open_clips_ids(
    client, tiny_modules
) -> None:
    _, textual = tiny_modules
    texts = [*TEXTS, *CAPTIONS]
    ours = embed_strings(client, EMBED, texts)
    ids = torch.from_numpy(clip.open_clip_ids(np.array(texts, dtype=object)).astype(np.int32))
    with torch.no_grad():
        theirs = textual(ids).numpy()
    error, cosine = parity(ours, theirs)
    print(f"tiny embed_clip_text vs PyTorch on open_clip ids: max |Δ| {error:.3g}")
    assert ours.shape == (len(texts), EMBEDDING_SIZE)
    assert error <= MAX_ABS and cosine >= MIN_COSINE


def test_texts_beyond_the_encoders_batch_limit_take_two_executions(client) -> None:
    limit = clip.CLIP_VIT_B32_TEXTUAL.batching.max_batch_size
    texts = [f"caption number {i}" for i in range(limit + 4)]
    before = model_counts(client, TEXTUAL)
    vectors = embed_strings(client, EMBED, texts)
    inferences, executions = counts_since(client, TEXTUAL, before, inferences=len(texts))
    assert vectors.shape == (len(texts), EMBEDDING_SIZE)
    assert (inferences, executions) == (len(texts), 2)
    # Each text's vector does not depend on the others it came with.
    np.testing.assert_allclose(vectors[-1], embed_strings(client, EMBED, texts[-1:])[0], atol=1e-5)


def test_triton_batches_concurrent_photo_requests(tiny, client) -> None:
    server, _ = tiny
    one = to_clip_batch(photos()[:1])

    def call(_: int) -> np.ndarray:
        return embed_images(grpcclient.InferenceServerClient(server.grpc_url), one)

    before = model_counts(client, VISUAL)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    assert all(np.allclose(r, results[0], rtol=0, atol=1e-6) for r in results)
    inferences, executions = counts_since(client, VISUAL, before, inferences=16)
    print(f"16 concurrent single-photo requests: {executions} executions")
    assert inferences == 16 and executions < inferences, "Triton ran every request alone"


def test_the_gateway_session_chunks_photos_by_the_served_batch_limit(tiny) -> None:
    server, _ = tiny
    settings = Settings(triton_grpc_url=server.grpc_url, triton_timeout_s=30.0)
    limit = clip.CLIP_VIT_B32_VISUAL.batching.max_batch_size
    images = (photos() * 7)[: limit + 2]

    async def scenario() -> np.ndarray:
        triton = TritonClient(settings)
        await triton.start()
        try:
            return await TritonClip(triton).embed_images(images)
        finally:
            await triton.close()

    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    before = model_counts(grpc, VISUAL)
    vectors = asyncio.run(asyncio.wait_for(scenario(), 60))
    inferences, _ = counts_since(grpc, VISUAL, before, inferences=len(images))
    assert vectors.shape == (len(images), EMBEDDING_SIZE) and inferences == len(images)
    np.testing.assert_allclose(vectors[3], vectors[0], atol=1e-5)  # the same photo again


def test_the_gateway_session_embeds_texts_as_embed_clip_text_does(tiny, client) -> None:
    server, _ = tiny
    settings = Settings(triton_grpc_url=server.grpc_url, triton_timeout_s=30.0)

    async def scenario() -> np.ndarray:
        triton = TritonClient(settings)
        await triton.start()
        try:
            return await TritonClip(triton).embed_texts(CAPTIONS)
        finally:
            await triton.close()

    vectors = asyncio.run(asyncio.wait_for(scenario(), 60))
    np.testing.assert_allclose(vectors, embed_strings(client, EMBED, CAPTIONS), atol=1e-6)


class TestEmbedClipText(TextModelChecks):
    model = EMBED
    embedding_size = EMBEDDING_SIZE
    max_text_bytes = MAX_TEXT_BYTES


def test_metadata_names_what_grpc_clients_send(client) -> None:
    visual = client.get_model_metadata(VISUAL, as_json=True)
    assert visual["inputs"] == [
        {"name": "image", "datatype": "UINT8", "shape": ["-1", "224", "224", "3"]}
    ]
    textual = client.get_model_metadata(TEXTUAL, as_json=True)
    assert textual["inputs"] == [{"name": "input_ids", "datatype": "INT32", "shape": ["-1", "77"]}]


@pytest.mark.slow
def test_the_full_towers_served_match_transformers_clip_model(
    tmp_path_factory: pytest.TempPathFactory, start_triton
) -> None:
    """ViT-B/32 at full size (synthetic weights: the offline default), checked by the export
    against CLIPModel and then served: photos and strings through Triton against
    CLIPModel.get_image_features / get_text_features with the same weights in this process."""
    root = build_repository(
        tmp_path_factory.mktemp("clip_full_repo"), [EMBED, VISUAL], weights="synthetic"
    )
    for model in (VISUAL, TEXTUAL):
        manifest = json.loads((root / model / "manifest.json").read_text())
        checks = {(c["check"], c["metric"]): c for c in manifest["validation"]}
        for metric in ("max_abs_error", "cosine_similarity"):
            check = checks[("onnxruntime_vs_transformers_clip", metric)]
            print(f"{model} manifest: ONNX vs transformers {metric} = {check['value']:.3g}")
            assert check["passed"]
    server = start_triton(root)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    images = photos()
    served_images = embed_images(grpc, to_clip_batch(images))
    image_error, image_cosine = parity(
        served_images, clip._image_features("synthetic")(clip.reference_photos())
    )
    texts = [*TEXTS, *CAPTIONS]
    served_texts = embed_strings(grpc, EMBED, texts)
    text_error, text_cosine = parity(
        served_texts, clip._text_features("synthetic")(np.array(texts, dtype=object))
    )
    print(
        f"full served vs CLIPModel: images max |Δ| {image_error:.3g} (cosine {image_cosine:.9f}),"
        f" texts max |Δ| {text_error:.3g} (cosine {text_cosine:.9f})"
    )
    assert image_error <= MAX_ABS and image_cosine >= MIN_COSINE
    assert text_error <= MAX_ABS and text_cosine >= MIN_COSINE
