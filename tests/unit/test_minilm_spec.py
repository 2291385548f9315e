"""The minilm_l6_v2 spec: its pinned package files, the pooling inside the graph, its tiny
variant, the embed_text BLS model's install, and the vector check over token-id inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from export.errors import WeightsError
from export.hashing import sha256_of
from export.models import minilm
from export.models.minilm import (
    BERT_CONFIG,
    EMBED_TEXT,
    EMBEDDING_SIZE,
    MINILM_L6_V2,
    SHA256,
    TINY_CONFIG,
    convert,
    locate_files,
    package_folder,
    validation_feeds,
)
from export.registry import PYTHON_MODELS, expand
from export.repository import install_python_model
from export.spec import VectorTolerance
from export.validate import check_vector_against_reference, open_session

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub


def test_every_pinned_file_has_the_pinned_hash() -> None:
    folder = package_folder()
    for name, digest in SHA256.items():
        assert sha256_of(folder / name) == digest, name


def test_a_changed_file_is_refused(monkeypatch) -> None:
    minilm._checked.cache_clear()
    monkeypatch.setitem(minilm.SHA256, "model.safetensors", "0" * 64)
    try:
        with pytest.raises(WeightsError, match="sha256"):
            locate_files()
    finally:
        minilm._checked.cache_clear()


def test_the_spec_architecture_is_what_the_package_config_states() -> None:
    stated = json.loads((package_folder() / "config.json").read_text())
    assert {k: stated[k] for k in BERT_CONFIG} == BERT_CONFIG
    sbert = json.loads((package_folder() / "sentence_bert_config.json").read_text())
    assert sbert["max_seq_length"] == minilm.MAX_SEQ_LENGTH


def test_package_weights_load_strictly_into_the_full_model() -> None:
    model = MINILM_L6_V2.build()
    model.load_state_dict(convert(locate_files()), strict=True)


def test_the_tiny_variant_takes_real_token_ids_and_answers_the_served_shape() -> None:
    tiny, full = MINILM_L6_V2.build_tiny(), MINILM_L6_V2.build()
    assert isinstance(tiny, minilm.SentenceEmbedder) and isinstance(full, minilm.SentenceEmbedder)
    assert type(tiny.encoder) is type(full.encoder)
    assert TINY_CONFIG["num_hidden_layers"] == 2 and TINY_CONFIG["hidden_size"] == 32
    assert (tiny.fold_ids, tiny.tiles) == (True, 12) and (full.fold_ids, full.tiles) == (False, 1)
    feeds = validation_feeds(2, tiny=True)
    assert set(feeds) == {t.name for t in MINILM_L6_V2.inputs}
    assert all(v.dtype == np.int32 for v in feeds.values())
    assert int(feeds["input_ids"].max()) >= TINY_CONFIG["vocab_size"]  # real ids, folded
    with torch.no_grad():
        out = tiny(*(torch.from_numpy(feeds[t.name]) for t in MINILM_L6_V2.inputs))
    assert out.shape == (2, EMBEDDING_SIZE)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-6)
    assert not torch.allclose(out[0], out[1])


def test_the_batch_1_export_sample_has_padding_so_the_mask_is_traced() -> None:
    mask = validation_feeds(1, tiny=False)["attention_mask"]
    assert mask.shape[0] == 1 and 0 < mask.sum() < mask.size
    assert validation_feeds(1, tiny=True)["attention_mask"].min() == 0


def test_padding_a_text_further_does_not_change_its_embedding() -> None:
    model = MINILM_L6_V2.build_tiny().eval()
    ids = torch.tensor([[101, 7, 42, 311, 102]], dtype=torch.int32)
    padded = torch.nn.functional.pad(ids, (0, 11))
    mask = (padded != 0).to(torch.int32)
    with torch.no_grad():
        short = model(ids, torch.ones_like(ids))
        long = model(padded, mask)
    np.testing.assert_allclose(short.numpy(), long.numpy(), atol=1e-6)


def test_mean_pooling_weighs_only_real_tokens() -> None:
    class Constant(torch.nn.Module):
        config = type("Config", (), {"vocab_size": 1000, "hidden_size": 2})

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = input_ids.to(torch.float32)[..., None].expand(-1, -1, 2)

            class Out:
                last_hidden_state = hidden

            return Out()

    embedder = minilm.SentenceEmbedder(Constant(), vocab_size=8, embedding_size=2)
    ids = torch.tensor([[3, 4, 100]], dtype=torch.int32)
    pooled = embedder(ids, torch.tensor([[1, 1, 0]], dtype=torch.int32))
    np.testing.assert_allclose(pooled.numpy(), [[2**-0.5, 2**-0.5]], atol=1e-7)


def test_embed_text_installs_its_tokenizer_and_code_next_to_model_py(tmp_path: Path) -> None:
    assert PYTHON_MODELS["embed_text"] is EMBED_TEXT
    assert [s.name for s in expand(["embed_text"])] == ["minilm_l6_v2"]
    target = install_python_model(EMBED_TEXT, tmp_path)
    version = target / "1"
    assert {p.name for p in version.iterdir()} >= {
        "model.py",
        "text_encoder_io.py",
        "text_tokenizer.py",
        "tokenizer.json",
    }
    assert sha256_of(version / "tokenizer.json") == SHA256["tokenizer.json"]
    parameters = dict(EMBED_TEXT.parameters)
    assert parameters["encoder_model"] == MINILM_L6_V2.name
    assert int(parameters["encoder_max_batch"]) == MINILM_L6_V2.batching.max_batch_size


def _pair_session(tmp_path: Path) -> object:
    """input_ids, attention_mask (float here) → their product: `run` decides the reference."""
    node = helper.make_node("Mul", ["input_ids", "attention_mask"], ["embedding"])
    values = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 2])
        for name in ("input_ids", "attention_mask", "embedding")
    ]
    model = helper.make_model(
        helper.make_graph([node], "pair", values[:2], values[2:]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    onnx.save(model, tmp_path / "pair.onnx")
    return open_session(tmp_path / "pair.onnx")


def test_a_vector_check_feeds_every_named_input_and_judges_each_row(tmp_path: Path) -> None:
    feeds = {
        "input_ids": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
        "attention_mask": np.ones((2, 2), np.float32),
    }
    session = _pair_session(tmp_path)
    tolerance = VectorTolerance(max_abs_error=1e-3, min_cosine=0.999)

    def check(reference: np.ndarray) -> list:
        return check_vector_against_reference(
            "m", session, lambda _: reference, np.zeros(2), feeds, tolerance, "c", "label"
        )

    assert all(r.passed for r in check(np.eye(2)))
    # Right overall direction for the first row, the second row's turned away: fails on cosine.
    results = check(np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert [r.metric for r in results] == ["max_abs_error", "cosine_similarity"]
    assert results[1].value == pytest.approx(0.0) and not results[1].passed
