"""The BLIP specs: the official snapshot's pins and conversion, the tokenizer built from the
pinned BERT-uncased files, the caption_blip install, the tiny graphs at the served shapes (and at
other lengths than the traced ones, against transformers' own forward), and the whole decoding
loop on ONNX Runtime against transformers' generate() on the same weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from export.errors import WeightsError
from export.hashing import sha256_of
from export.models import blip
from export.models.blip import (
    BLIP_DECODER_FIRST,
    BLIP_DECODER_STEP,
    BLIP_GRAPHS,
    BLIP_VISION,
    CAPTION_BLIP,
)
from export.pipeline import ExportOptions, export_any, load_model
from export.registry import MODELS, PYTHON_MODELS, expand
from export.repository import install_python_model
from export.validate import open_session
from export.weights import choose_source, synthetic_weights
from serving.bls import blip_decoding, blip_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

SERVED_PAST = (blip.PAST_LAYERS, blip.PAST_HEADS, blip.PAST_HEAD_DIM)


def _options(root: Path, **overrides: object) -> ExportOptions:
    values: dict[str, object] = {
        "repository": root / "repo",
        "weights": "synthetic",
        "weights_dir": root / "weights",
        "tiny": True,
        "show_progress": False,
    } | overrides
    return ExportOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("blip_tiny")
    for spec in BLIP_GRAPHS:
        export_any(spec, _options(root))
    return root / "repo"


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory: pytest.TempPathFactory) -> blip.BlipGraph:
    """The tiny model with the synthetic weights the export loads (seed and adjustment)."""
    root = tmp_path_factory.mktemp("blip_weights")
    model, _ = load_model(BLIP_DECODER_STEP, "synthetic", _options(root))
    assert isinstance(model, blip.BlipGraph)
    return model


def _session(repository: Path, name: str) -> Any:
    return open_session(repository / name / "1" / "model.onnx")


def test_the_three_graphs_and_the_caption_model_are_registered() -> None:
    assert all(MODELS[spec.name] is spec for spec in BLIP_GRAPHS)
    assert PYTHON_MODELS["caption_blip"] is CAPTION_BLIP
    assert [s.name for s in expand(["caption_blip"])] == [s.name for s in BLIP_GRAPHS]


def test_the_typed_config_is_blip_image_captioning_base() -> None:
    """The values of the checkpoint's config.json that differ from transformers' defaults."""
    model = blip.build_blip(blip.TEXT_CONFIG, blip.VISION_CONFIG)
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.num_attention_heads, text.num_hidden_layers, text.vocab_size) == (12, 12, 30524)
    assert text.encoder_hidden_size == vision.hidden_size == 768
    assert (vision.image_size, vision.patch_size, vision.num_hidden_layers) == (384, 16, 12)
    assert (text.bos_token_id, text.sep_token_id, text.pad_token_id) == (30522, 102, 0)
    vision_count = sum(p.numel() for p in model.vision_model.parameters())
    text_count = sum(p.numel() for p in model.text_decoder.parameters())
    print(f"BLIP base: vision {vision_count:,}, text decoder {text_count:,} parameters")
    # ViT-B/16 at 384²: patch conv 590,592 + class 768 + positions 577 × 768 + 12 layers of
    # 7,087,872 + the final LayerNorm 1,536.
    assert vision_count == 590_592 + 768 + 577 * 768 + 12 * 7_087_872 + 1_536 == 86_090_496


def test_official_weights_are_never_downloaded(tmp_path: Path) -> None:
    options = _options(tmp_path, weights="official", tiny=False)
    with pytest.raises(WeightsError, match="never downloaded") as raised:
        export_any(BLIP_VISION, options)
    assert "blip-image-captioning-base/pytorch_model.bin" in str(raised.value)
    assert not blip.OFFICIAL.download
    assert len(blip.OFFICIAL.sha256) == 64 and blip.REVISION in blip.OFFICIAL.url


def test_auto_takes_the_snapshot_folder_once_it_is_there(tmp_path: Path) -> None:
    assert choose_source(BLIP_VISION, "auto", tmp_path) == "synthetic"
    (tmp_path / blip.SNAPSHOT).mkdir()
    (tmp_path / blip.SNAPSHOT / blip.WEIGHTS_FILE).write_bytes(b"placeholder")
    assert all(choose_source(spec, "auto", tmp_path) == "official" for spec in BLIP_GRAPHS)


def _snapshot_config(folder: Path, monkeypatch: pytest.MonkeyPatch, **changes: object) -> Path:
    """A config.json stating this spec's architecture, its hash made the pinned one."""
    stated = {
        "architectures": ["BlipForConditionalGeneration"],
        "text_config": blip.TEXT_CONFIG | changes,
        "vision_config": blip.VISION_CONFIG,
    }
    path = folder / blip.CONFIG_FILE
    path.write_text(json.dumps(stated))
    monkeypatch.setitem(blip.SNAPSHOT_SHA256, blip.CONFIG_FILE, sha256_of(path))
    return path


def test_a_snapshot_checkpoint_loads_strictly_after_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_graph: blip.BlipGraph
) -> None:
    """A checkpoint as transformers 4.26 saved it: each tied tensor under one name only, and
    the position_ids buffer it no longer keeps."""
    saved = {k: v.clone() for k, v in tiny_graph.blip.state_dict().items()}
    for alias in blip.TIED_KEYS:
        del saved[alias]
    saved["text_decoder.bert.embeddings.position_ids"] = torch.arange(128)[None]
    folder = tmp_path / blip.SNAPSHOT
    folder.mkdir()
    torch.save(saved, folder / blip.WEIGHTS_FILE)
    _snapshot_config(folder, monkeypatch)
    state = blip.convert_official(folder / blip.WEIGHTS_FILE)
    fresh = BLIP_DECODER_STEP.build_tiny()
    fresh.load_state_dict(state, strict=True)
    for key, value in tiny_graph.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_a_snapshot_of_another_architecture_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _snapshot_config(tmp_path, monkeypatch, num_attention_heads=8)
    with pytest.raises(WeightsError, match="num_attention_heads"):
        blip.check_snapshot_config(path)
    monkeypatch.setitem(blip.SNAPSHOT_SHA256, blip.CONFIG_FILE, "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        blip.check_snapshot_config(path)


def test_synthetic_weights_are_adjusted_to_exercise_the_search(tiny_graph) -> None:
    generic = synthetic_weights(BLIP_DECODER_STEP.build_tiny()).state_dict
    adjusted = blip.at_init_scale(generic)
    bias = "blip.text_decoder.cls.predictions.bias"
    for key in (bias, "blip.text_decoder.cls.predictions.decoder.bias"):
        assert adjusted[key][blip.SEP_ID] == pytest.approx(blip.synthetic_sep_bias(blip.TINY_VOCAB))
    assert torch.equal(adjusted[bias][: blip.SEP_ID], generic[bias][: blip.SEP_ID])
    layer = "blip.text_decoder.bert.encoder.layer.0.crossattention.self.value.weight"
    assert torch.allclose(adjusted[layer], generic[layer] * blip.SYNTHETIC_LAYER_GAIN)
    vision = "blip.vision_model.encoder.layers.0.mlp.fc1.weight"
    assert torch.equal(adjusted[vision], generic[vision])
    norm = "blip.vision_model.post_layernorm.weight"
    assert torch.allclose(adjusted[norm], generic[norm] + 1)


def test_the_tokenizer_is_bert_uncased_with_blips_two_added_tokens() -> None:
    tokenizer = blip.build_tokenizer()
    assert tokenizer.get_vocab_size() == blip.VOCAB_SIZE
    assert tokenizer.token_to_id("[DEC]") == blip.BOS_ID
    assert tokenizer.token_to_id("[ENC]") == blip.ENC_ID
    assert blip.prompt_ids() == blip.VALIDATION_PROMPT


def test_the_tokenizer_encodes_and_decodes_as_transformers_bert_tokenizer_with_blips_tokens() -> (
    None
):
    """transformers builds its BertTokenizer from vocab.txt itself, with BLIP's special tokens
    as BlipProcessor's tokenizer declares them: ids and captions must agree with ours."""
    from transformers import BertTokenizer

    theirs = BertTokenizer(
        vocab=str(blip.vocab_file()),
        do_lower_case=True,
        bos_token="[DEC]",
        additional_special_tokens=["[ENC]"],
    )
    ours = blip.build_tokenizer()
    for text in (blip.PROMPT, "A Dog's café, running (fast)!", "two cats on a couch."):
        assert ours.encode(text).ids == theirs(text)["input_ids"], text
    rng = np.random.default_rng(3)
    for _ in range(20):
        ids = [blip.BOS_ID, *rng.integers(999, 30522, size=8).tolist(), blip.SEP_ID, 0, 0]
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(
            ids, skip_special_tokens=True
        )


def test_a_caption_is_the_decoded_ids_with_the_prompt_cut_off() -> None:
    tokenizer = blip.build_tokenizer()
    prompt = list(blip.prompt_ids())
    generated = tokenizer.encode("two dogs running", add_special_tokens=False).ids
    assert blip_text.caption(tokenizer, blip.PROMPT, prompt, [*generated, blip.SEP_ID, 0]) == (
        "two dogs running"
    )
    assert blip_text.caption(tokenizer, blip.PROMPT, prompt, [blip.SEP_ID]) == ""


def test_caption_blip_installs_its_tokenizer_its_source_and_its_modules(tmp_path: Path) -> None:
    target = install_python_model(CAPTION_BLIP, tmp_path) / "1"
    assert {p.name for p in target.iterdir()} >= {
        "model.py",
        "blip_decoding.py",
        "blip_text.py",
        "detector_io.py",
        "tokenizer.json",
        "tokenizer_source.json",
    }
    source = json.loads((target / "tokenizer_source.json").read_text())
    assert source["files"]["vocab.txt"] == blip.VOCAB_SHA256
    assert source["added_tokens"] == {"[DEC]": blip.BOS_ID, "[ENC]": blip.ENC_ID}
    loaded = blip_text.load_tokenizer(target / "tokenizer.json")
    assert blip_text.prompt_ids(loaded, blip.PROMPT, blip.BOS_ID) == list(blip.VALIDATION_PROMPT)
    parameters = dict(CAPTION_BLIP.parameters)
    assert int(parameters["decoder_max_batch"]) == BLIP_DECODER_STEP.batching.max_batch_size
    assert int(parameters["decoder_max_batch"]) == BLIP_DECODER_FIRST.batching.max_batch_size
    assert int(parameters["vision_max_batch"]) == BLIP_VISION.batching.max_batch_size
    assert CAPTION_BLIP.requires == tuple(s.name for s in BLIP_GRAPHS)


def test_the_tiny_graphs_answer_the_served_shapes(tiny_repository: Path) -> None:
    images = blip.sample_images(2)
    (embeds,) = _session(tiny_repository, "blip_vision").run(None, {"image": images})
    assert embeds.shape == (2, blip.IMAGE_TOKENS, blip.EMBED_WIDTH)
    assert not np.allclose(embeds[0], embeds[1])
    logits, keys, values = _session(tiny_repository, "blip_decoder_first").run(
        None,
        {"input_ids": np.array([blip.VALIDATION_PROMPT] * 2, np.int32), "image_embeds": embeds},
    )
    assert logits.shape == (2, blip.VOCAB_SIZE) and logits[:, blip.TINY_VOCAB :].max() < -1e3
    assert keys.shape == values.shape == (2, SERVED_PAST[0], SERVED_PAST[1], 4, SERVED_PAST[2])
    step = {
        "input_ids": np.array([[1037], [2158]], np.int32),
        "past_keys": keys,
        "past_values": values,
        "image_embeds": embeds,
    }
    _, grown, _ = _session(tiny_repository, "blip_decoder_step").run(None, step)
    assert grown.shape[3] == 5
    np.testing.assert_array_equal(grown[:, :, :, :4], keys)


@pytest.mark.parametrize("past_length", [1, 9, 40])
def test_the_step_graph_matches_transformers_at_any_past_length(
    tiny_repository: Path, tiny_graph: blip.BlipGraph, past_length: int
) -> None:
    feeds = blip.step_feeds(3, tiny=True, past_length=past_length)
    feeds["input_ids"] = np.array([[5], [blip.SEP_ID], [30000]], np.int32)
    names = [t.name for t in BLIP_DECODER_STEP.outputs]
    served = dict(
        zip(names, _session(tiny_repository, "blip_decoder_step").run(names, feeds), strict=True)
    )
    theirs = blip.transformers_step(tiny_graph, feeds)
    for name in names:
        np.testing.assert_allclose(served[name], theirs[name], atol=1e-5, err_msg=name)


def test_the_first_graph_matches_transformers_on_a_longer_prompt(
    tiny_repository: Path, tiny_graph: blip.BlipGraph
) -> None:
    ids = np.array([[blip.BOS_ID, 1037, 3861, 1997, 2158, 4937, 2006]] * 2, np.int32)
    feeds = {"input_ids": ids, "image_embeds": blip._image_embeds(2)}
    names = [t.name for t in BLIP_DECODER_FIRST.outputs]
    served = dict(
        zip(names, _session(tiny_repository, "blip_decoder_first").run(names, feeds), strict=True)
    )
    theirs = blip.transformers_first(tiny_graph, feeds)
    for name in names:
        np.testing.assert_allclose(served[name], theirs[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_the_loop_on_onnx_runtime_gives_the_ids_of_transformers_generate(
    tiny_repository: Path, tiny_graph: blip.BlipGraph, num_beams: int
) -> None:
    """What caption_blip does, without Triton: ORT graphs + the numpy search."""
    images = blip.sample_images(4)
    vision, first, step = (
        _session(tiny_repository, s.name)
        for s in (BLIP_VISION, BLIP_DECODER_FIRST, BLIP_DECODER_STEP)
    )
    (embeds,) = vision.run(None, {"image": images})
    past: dict[str, np.ndarray] = {}

    def run_first(count: int) -> np.ndarray:
        prompt = np.array([blip.VALIDATION_PROMPT] * count, np.int32)
        logits, past["keys"], past["values"] = first.run(
            None, {"input_ids": prompt, "image_embeds": embeds}
        )
        return logits

    def run_step(rows: blip_decoding.Step) -> np.ndarray:
        feeds = {
            "input_ids": rows.tokens,
            "past_keys": past["keys"][rows.source_rows],
            "past_values": past["values"][rows.source_rows],
            "image_embeds": embeds[rows.images],
        }
        logits, past["keys"], past["values"] = step.run(None, feeds)
        return logits

    options = blip_decoding.DecodingOptions(num_beams, 12, blip.SEP_ID, blip.PAD_ID)
    ours = blip_decoding.generate(run_first, run_step, len(images), options)
    theirs = blip.transformers_generate(tiny_graph, images, num_beams, 12)
    print(f"num_beams {num_beams}: {ours}")
    assert ours == theirs
    assert len({tuple(s) for s in ours}) > 1, "every photo got the same caption"


def test_the_caption_model_runs_on_numpy_and_tokenizers_alone() -> None:
    """caption_blip's code inside Triton imports neither torch nor transformers."""
    from types import SimpleNamespace

    from serving.bls import blip_decoding as decoding_module
    from tests.imports import imported_packages

    model_py = Path(__file__).resolve().parents[2] / "model_repository/caption_blip/1/model.py"
    allowed = {"numpy", "tokenizers", "triton_python_backend_utils", "__future__"}
    allowed |= {"asyncio", "json", "os", "sys", "pathlib", "typing", "collections", "dataclasses"}
    allowed |= {"blip_decoding", "blip_text", "detector_io", "math"}
    for module in (decoding_module, blip_text, SimpleNamespace(__file__=str(model_py))):
        imported = imported_packages(module)  # type: ignore[arg-type]
        assert imported <= allowed, (module.__file__, imported - allowed)
