"""The CLIP ViT-B/32 specs: both towers against transformers' own modules (normalisation inside
the graph, the causal mask, pooling at <|endoftext|>), their tiny variants, the synthetic
rescale, the official snapshot path (pinned, never downloaded), and embed_clip_text's install."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from export import clip_vocab
from export.errors import WeightsError
from export.hashing import sha256_of
from export.models import clip
from export.models.clip import (
    CLIP_VIT_B32_TEXTUAL,
    CLIP_VIT_B32_VISUAL,
    CONTEXT_LENGTH,
    EMBED_CLIP_TEXT,
    EMBEDDING_SIZE,
    TINY_TEXT_CONFIG,
    TINY_VISION_CONFIG,
    ImageEmbedder,
    TextEmbedder,
)
from export.registry import MODELS, PYTHON_MODELS, expand
from export.repository import install_python_model
from export.weights import choose_source, load_weights, source_files
from perf import gpu_probe
from serving.bls import clip_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

EOT = clip_tokenizer.END_OF_TEXT


def _ids(*rows: tuple[int, ...]) -> torch.Tensor:
    ids = torch.zeros((len(rows), CONTEXT_LENGTH), dtype=torch.int32)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row, dtype=torch.int32)
    return ids


def test_the_three_models_are_registered_and_embed_clip_text_brings_the_text_tower() -> None:
    assert MODELS["clip_vit_b32_visual"] is CLIP_VIT_B32_VISUAL
    assert MODELS["clip_vit_b32_textual"] is CLIP_VIT_B32_TEXTUAL
    assert PYTHON_MODELS["embed_clip_text"] is EMBED_CLIP_TEXT
    assert [s.name for s in expand(["embed_clip_text"])] == ["clip_vit_b32_textual"]
    parameters = dict(EMBED_CLIP_TEXT.parameters)
    assert parameters["encoder_model"] == CLIP_VIT_B32_TEXTUAL.name
    assert int(parameters["encoder_max_batch"]) == CLIP_VIT_B32_TEXTUAL.batching.max_batch_size
    assert int(parameters["context_length"]) == CONTEXT_LENGTH == 77


def test_the_full_towers_are_vit_b32_sized() -> None:
    visual, textual = CLIP_VIT_B32_VISUAL.build(), CLIP_VIT_B32_TEXTUAL.build()
    assert sum(p.numel() for p in visual.parameters()) == 87_849_216
    assert sum(p.numel() for p in textual.parameters()) == 63_428_096
    assert isinstance(textual, TextEmbedder) and not textual.fold_ids


def test_the_tiny_variants_take_and_answer_the_served_shapes() -> None:
    visual, textual = CLIP_VIT_B32_VISUAL.build_tiny(), CLIP_VIT_B32_TEXTUAL.build_tiny()
    assert isinstance(visual, ImageEmbedder) and isinstance(textual, TextEmbedder)
    assert textual.fold_ids and textual.vocab == TINY_TEXT_CONFIG["vocab_size"]
    images = clip.visual_feeds(2, tiny=True)["image"]
    ids = clip.textual_feeds(2, tiny=True)["input_ids"]
    assert images.shape == (2, 224, 224, 3) and images.dtype == np.uint8
    assert ids.shape == (2, CONTEXT_LENGTH) and ids.dtype == np.int32 and int(ids.max()) == EOT
    with torch.no_grad():
        for out in (visual(torch.from_numpy(images)), textual(torch.from_numpy(ids))):
            assert out.shape == (2, EMBEDDING_SIZE)
            np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-6)
            assert not torch.allclose(out[0], out[1])


def test_the_tiny_validation_ids_are_what_the_tokenizer_gives() -> None:
    full = clip.textual_feeds(2, tiny=False)["input_ids"]
    np.testing.assert_array_equal(full, clip.textual_feeds(2, tiny=True)["input_ids"])


def _reference_text_model() -> tuple[TextEmbedder, torch.nn.Module]:
    """Our text embedder and transformers' CLIPTextModel (its own mask and pooling) with the
    same small weights over the full vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    values = TINY_TEXT_CONFIG | {"vocab_size": clip.VOCAB_SIZE}
    ours = TextEmbedder(clip._text_model(values), EMBEDDING_SIZE, clip.VOCAB_SIZE)
    ours.eval()
    ours.load_state_dict(clip.at_init_scale(ours.state_dict()), strict=True)
    theirs: Any = CLIPTextModel(CLIPTextConfig(**values))
    theirs.eval()
    theirs.load_state_dict(
        {
            k.removeprefix("text_model."): v
            for k, v in ours.state_dict().items()
            if "text_model" in k
        }
    )
    return ours, theirs


def test_text_pooling_and_mask_are_transformers_clip_text_model_s() -> None:
    ours, theirs = _reference_text_model()
    ids = _ids((49406, 320, 1125, 539, 320, 2368, EOT), (49406, 88, EOT, 12, EOT), (49406, EOT))
    with torch.no_grad():
        pooled = theirs(input_ids=ids.to(torch.int64)).pooler_output
        expected = torch.nn.functional.normalize(ours.text_projection(pooled), dim=1)
        np.testing.assert_allclose(ours(ids).numpy(), expected.numpy(), atol=1e-6)


def test_what_follows_endoftext_changes_nothing_and_what_precedes_it_does() -> None:
    model = CLIP_VIT_B32_TEXTUAL.build_tiny().eval()
    base = _ids((49406, 320, 2368, EOT))
    padded = base.clone()
    padded[0, 4:9] = torch.tensor([7, 8, EOT, 9, 10])
    changed = base.clone()
    changed[0, 2] = 1125
    with torch.no_grad():
        first, second, third = model(base), model(padded), model(changed)
    np.testing.assert_allclose(first.numpy(), second.numpy(), atol=1e-6)
    assert not torch.allclose(first, third, atol=1e-4)


def test_the_image_tower_normalises_as_clip_image_processor_inside_the_graph() -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    ours = ImageEmbedder(clip._vision_model(TINY_VISION_CONFIG), EMBEDDING_SIZE)
    ours.eval()
    ours.load_state_dict(clip.at_init_scale(ours.state_dict()), strict=True)
    theirs: Any = CLIPVisionModel(CLIPVisionConfig(**TINY_VISION_CONFIG))
    theirs.eval()
    theirs.load_state_dict(
        {k.removeprefix("vision_model."): v for k, v in ours.state_dict().items() if "vision" in k}
    )
    photos = clip.reference_photos()
    crops = clip.processor_crops(photos)["image"]
    pixels = clip.image_processor()(
        list(photos), return_tensors="pt", input_data_format="channels_last"
    )["pixel_values"]
    with torch.no_grad():
        expected = ours.visual_projection(theirs(pixel_values=pixels).pooler_output)
        expected = torch.nn.functional.normalize(expected, dim=1)
        np.testing.assert_allclose(ours(torch.from_numpy(crops)).numpy(), expected, atol=1e-6)


def test_the_synthetic_rescale_gives_clips_init_scale_and_layernorm_gains_near_one() -> None:
    model = CLIP_VIT_B32_VISUAL.build_tiny()
    from export.weights import synthetic_weights

    state = clip.at_init_scale(synthetic_weights(model).state_dict)
    assert abs(float(state["vision_model.pre_layrnorm.weight"].mean()) - 1.0) < 0.05
    hidden, layers = TINY_VISION_CONFIG["hidden_size"], TINY_VISION_CONFIG["num_hidden_layers"]
    q = state["vision_model.encoder.layers.0.self_attn.q_proj.weight"]
    assert float(q.std()) == pytest.approx(hidden**-0.5 * (2 * layers) ** -0.5, rel=1e-4)
    assert float(state["visual_projection.weight"].std()) == pytest.approx(hidden**-0.5, rel=1e-4)
    again = clip.at_init_scale(synthetic_weights(model).state_dict)
    assert all(torch.equal(v, again[k]) for k, v in state.items())


def test_the_official_snapshot_is_never_downloaded(tmp_path: Path) -> None:
    for spec in (CLIP_VIT_B32_VISUAL, CLIP_VIT_B32_TEXTUAL):
        assert spec.official is not None and not spec.official.download
        assert spec.official.sha256 == clip.SHA256["pytorch_model.bin"]
        assert choose_source(spec, "auto", tmp_path) == "synthetic"
        with pytest.raises(WeightsError, match="never downloaded"):
            source_files(spec, "official", tmp_path)


def test_a_snapshot_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / clip.SNAPSHOT
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"placeholder")
    assert choose_source(CLIP_VIT_B32_VISUAL, "auto", tmp_path) == "official"
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(CLIP_VIT_B32_VISUAL, "official", tmp_path, CLIP_VIT_B32_VISUAL.build_tiny())


@pytest.fixture
def tiny_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A snapshot folder of a tiny CLIPModel laid out as the Hugging Face repository's, with
    the spec's pins and architecture switched to it."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=TINY_TEXT_CONFIG, vision_config=TINY_VISION_CONFIG, **clip.CLIP_CONFIG
    )
    model = CLIPModel(config)
    folder = tmp_path / clip.SNAPSHOT
    folder.mkdir()
    state = dict(model.state_dict())
    state["text_model.embeddings.position_ids"] = torch.arange(CONTEXT_LENGTH)[None]
    torch.save(state, folder / "pytorch_model.bin")
    stated = config.to_dict() | {"architectures": ["CLIPModel"]}
    (folder / "config.json").write_text(json.dumps(stated))
    monkeypatch.setattr(clip, "TEXT_CONFIG", TINY_TEXT_CONFIG)
    monkeypatch.setattr(clip, "VISION_CONFIG", TINY_VISION_CONFIG)
    monkeypatch.setitem(clip.SHA256, "pytorch_model.bin", sha256_of(folder / "pytorch_model.bin"))
    monkeypatch.setitem(clip.SHA256, "config.json", sha256_of(folder / "config.json"))
    clip.reference_model.cache_clear()
    yield folder
    clip.reference_model.cache_clear()
    clip._SNAPSHOT_READ.clear()


def test_official_weights_split_into_towers_that_load_strictly(tiny_snapshot: Path) -> None:
    weights = tiny_snapshot / "pytorch_model.bin"
    visual = CLIP_VIT_B32_VISUAL.build_tiny()
    visual.load_state_dict(clip.VISUAL_OFFICIAL.convert(weights), strict=True)  # type: ignore[misc]
    textual = CLIP_VIT_B32_TEXTUAL.build_tiny()
    textual.load_state_dict(clip.TEXTUAL_OFFICIAL.convert(weights), strict=True)  # type: ignore[misc]
    # The reference reads the same snapshot into transformers' CLIPModel.
    photos = clip.reference_photos()
    expected = clip._image_features("official")(photos)
    with torch.no_grad():
        ours = visual.eval()(torch.from_numpy(clip.processor_crops(photos)["image"])).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_a_snapshot_of_another_architecture_is_refused(tiny_snapshot: Path, monkeypatch) -> None:
    monkeypatch.setattr(clip, "VISION_CONFIG", TINY_VISION_CONFIG | {"patch_size": 16})
    with pytest.raises(WeightsError, match=r"vision\.patch_size"):
        clip.check_config(tiny_snapshot)


def test_embed_clip_text_installs_its_tokenizer_code_and_provenance(tmp_path: Path) -> None:
    target = install_python_model(EMBED_CLIP_TEXT, tmp_path)
    version = target / "1"
    names = {p.name for p in version.iterdir()}
    assert names >= {
        "model.py",
        "clip_tokenizer.py",
        "text_encoder_io.py",
        "text_tokenizer.py",
        "tokenizer.json",
        "tokenizer_source.json",
    }
    source = json.loads((version / "tokenizer_source.json").read_text())
    assert source["source_package"] == "open_clip_torch==3.3.0"
    assert source["source_sha256"] == clip_vocab.VOCAB_SHA256
    assert source["tokenizer_sha256"] == sha256_of(version / "tokenizer.json")
    tokenizer = clip_tokenizer.load_tokenizer(version / "tokenizer.json")
    assert clip_tokenizer.token_ids(tokenizer, ["a photo of a cat"]) == [list(clip.TINY_IDS[0])]


def test_the_gpu_probe_feeds_uint8_photos_and_77_ids() -> None:
    visual = gpu_probe.arch_from_spec(CLIP_VIT_B32_VISUAL)
    assert (visual.channels, visual.fixed_side, visual.tiny_fixed_side) == (3, 224, 224)
    assert visual.uint8_nhwc and not visual.token_inputs
    textual = gpu_probe.arch_from_spec(CLIP_VIT_B32_TEXTUAL)
    assert (textual.channels, textual.token_inputs) == (0, 1)
    assert textual.fixed_side == textual.tiny_fixed_side == CONTEXT_LENGTH


def test_keys_the_2021_config_leaves_out_take_transformers_defaults(
    tiny_snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_snapshot / "config.json"
    stated = json.loads(path.read_text())
    del stated["vision_config"]["num_channels"]
    path.write_text(json.dumps(stated))
    monkeypatch.setitem(clip.SHA256, "config.json", sha256_of(path))
    assert "num_channels" not in clip.check_config(tiny_snapshot)["vision_config"]
