"""CLIP ViT-B/32 (openai/clip-vit-base-patch32), its two towers exported apart: photos and texts
into one 512-d space where the cosine of an image and a caption says how well they match.

`clip_vit_b32_visual`: uint8 RGB [B, 224, 224, 3] (NHWC, already resized and centre-cropped:
gateway/context/clip_image.py does what transformers' CLIPImageProcessor does) → CLIP's
mean/std normalisation inside the graph → ViT-B/32 → the class token's projection,
L2-normalised. `clip_vit_b32_textual`: int32 token ids [B, 77] (CLIP's BPE, <|startoftext|> …
<|endoftext|>, zero-padded) → the text transformer under its causal mask → the hidden state at
<|endoftext|>, found as CLIP finds it (the argmax of the ids: 49407 is the largest id, and the
first one wins) → projection, L2-normalised. `embed_clip_text` (Python BLS) takes UTF-8 strings
and tokenises inside Triton (serving/bls/clip_tokenizer.py with the tokenizer.json that
export/clip_vocab.py builds from CLIP's own vocabulary file), so no client needs a tokenizer.

Both towers are transformers' CLIP modules (export side only), built from the configuration
written below (openai/clip-vit-base-patch32's config.json). Weights: official = a local copy of
that Hugging Face repository at revision 3d74acf9 (`weights/clip-vit-base-patch32/`, its
pytorch_model.bin and config.json checked against the sha256 that independent projects pin;
never downloaded), else synthetic. The reference check runs transformers' own
CLIPModel.get_image_features / get_text_features (L2-normalised) with the same weights, on three
real photos through the CLIPImageProcessor pipeline and on texts through open_clip's copy of
the original OpenAI tokenizer.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from skimage import data as skimage_data
from torch import nn

from export import clip_vocab, samples
from export.errors import WeightsError
from export.hashing import sha256_of
from export.models.text_embedding import text_embedding_model
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    OfficialWeights,
    ReferenceCheck,
    StateDict,
    TensorRTProfile,
    TensorSpec,
    VectorTolerance,
    WeightKind,
    batch_profile,
)
from export.weights import synthetic_weights
from serving.bls import clip_tokenizer
from triton_core.batching import DEFAULT_CONTEXT_BATCH_IMAGES

EMBEDDING_SIZE = 512
IMAGE_SIZE = 224
CONTEXT_LENGTH = clip_tokenizer.CONTEXT_LENGTH
VOCAB_SIZE = clip_vocab.VOCAB_SIZE
# OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, per RGB channel of a [0, 1] image.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
# openai/clip-vit-base-patch32's config.json (revision 3d74acf9), the values that shape the
# network; locate checks that the official file still says so.
TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": CONTEXT_LENGTH,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,  # the legacy value: transformers then pools at the argmax of the ids
    "pad_token_id": 1,
}
VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": IMAGE_SIZE,
    "patch_size": 32,
    "num_channels": 3,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
CLIP_CONFIG: dict[str, Any] = {"projection_dim": EMBEDDING_SIZE, "logit_scale_init_value": 2.6592}
# Same code paths and served shapes at a few tens of thousands of parameters. The tiny text
# tower folds real ids into a 512-id table (pooling still finds <|endoftext|> in the real ids);
# the tiny vision tower keeps 224² and 32² patches with 8 channels.
TINY_TEXT_CONFIG: dict[str, Any] = TEXT_CONFIG | {
    "vocab_size": 512,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
TINY_VISION_CONFIG: dict[str, Any] = VISION_CONFIG | {
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}

REVISION = "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"
SNAPSHOT = "clip-vit-base-patch32"  # the folder under weights/
WEIGHTS_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
# The sha256 of the repository's files at that revision, as independent projects pin them
# (the revision has no model.safetensors: a later conversion commit added that file).
SHA256 = {
    WEIGHTS_FILE: "a63082132ba4f97a80bea76823f544493bffa8082296d62d71581a4feff1576f",
    CONFIG_FILE: "b575ef3c36f2a057fa19e221650105052d61cc9c1a972ec15019c6261ec98770",
}
LICENCE = "MIT (openai/CLIP's licence; the Hugging Face model card states none)"
UPSTREAM = f"https://huggingface.co/openai/clip-vit-base-patch32/tree/{REVISION}"

OPSET = 17
OPSET_REASON = (
    "MatMul, Softmax, Sigmoid (quick GELU), Gather, ArgMax and LayerNormalization, a single op "
    "from opset 17 on; 17 is also the TensorRT 8.6 floor shared by every model in the repository"
)
# FP32 ONNX Runtime vs PyTorch on unit vectors (elements up to ~0.2).
ATOL = 1e-5
# Against transformers' CLIPModel with the same weights: the same arithmetic but for the
# normalisation's rounding (in the graph vs the processor's float64 rescale).
REFERENCE_TOLERANCE = VectorTolerance(max_abs_error=1e-5, min_cosine=0.99999)

# Captions, a query, punctuation and numbers, unicode (accents, CJK, an emoji), an empty text
# and one past 77 tokens (cut), in that order; the first two are the batch-2 validation inputs.
LONG_TEXT = " ".join(
    ["A long caption about a quiet harbour town at dawn, its boats and gulls."] * 8
)
TEXTS = (
    "a photo of a cat",
    "A kitten is sleeping on a red sofa in the afternoon sun.",
    "a photo of an astronaut",
    "a cup of coffee on a saucer",
    "It's 3:45 pm: 2 dogs & 1 ball!",
    "Ünïcödé, café crème and naïve façades: 東京の猫 🐱",
    "",
    LONG_TEXT,
)
# The two validation texts as the tokenizer gives them, so the tiny variant needs no wheel.
TINY_IDS = (
    (49406, 320, 1125, 539, 320, 2368, 49407),
    (49406, 320, 13063, 533, 6982, 525, 320, 736, 15723, 530, 518, 2716, 2176, 269, 49407),
)
PHOTOS = ("astronaut", "chelsea", "coffee")  # scikit-image's, shipped with the package


def _offline() -> None:
    """Hugging Face libraries never reach a hub from the export."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class ImageEmbedder(nn.Module):
    """uint8 RGB NHWC → CLIP's normalisation → vision transformer → class token → projection →
    L2 normalisation: CLIPModel.get_image_features on CLIPImageProcessor's pixel values,
    normalised."""

    def __init__(self, vision_model: Any, projection_dim: int) -> None:
        super().__init__()
        self.vision_model: Any = vision_model
        hidden = int(vision_model.config.hidden_size)
        self.visual_projection = nn.Linear(hidden, projection_dim, bias=False)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # The buffers' dtype, so the module also runs in half precision (perf/gpu_probe.py).
        pixels = image.permute(0, 3, 1, 2).to(self.mean.dtype)
        pixels = (pixels / 255.0 - self.mean) / self.std
        vision = self.vision_model
        hidden = vision.pre_layrnorm(vision.embeddings(pixels))
        hidden = vision.encoder(inputs_embeds=hidden).last_hidden_state
        pooled = vision.post_layernorm(hidden[:, 0, :])
        return nn.functional.normalize(self.visual_projection(pooled), p=2.0, dim=1)


class TextEmbedder(nn.Module):
    """int32 ids [B, 77] → token and position embeddings → transformer under the causal mask →
    final LayerNorm → the state at the first <|endoftext|> (the argmax of the ids) →
    projection → L2 normalisation: CLIPModel.get_text_features, normalised.

    A text model with a smaller vocabulary (the tiny variant) folds the ids into it; pooling
    still reads the real ids."""

    def __init__(self, text_model: Any, projection_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.text_model: Any = text_model
        config = text_model.config
        self.text_projection = nn.Linear(int(config.hidden_size), projection_dim, bias=False)
        self.vocab = int(config.vocab_size)
        self.fold_ids = self.vocab < vocab_size
        length = int(config.max_position_embeddings)
        # The additive causal mask eager attention adds to its scores, a constant of the graph
        # (transformers' mask builder branches in Python on shapes, which tracing would freeze).
        causal = torch.full((length, length), torch.finfo(torch.float32).min).triu(1)
        self.causal: torch.Tensor
        self.register_buffer("causal", causal[None, None], persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(torch.int64)
        tokens = torch.remainder(ids, self.vocab) if self.fold_ids else ids
        text = self.text_model
        hidden = text.embeddings(input_ids=tokens)
        mask = self.causal[..., : ids.shape[1], : ids.shape[1]].to(hidden.dtype)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        # Ids < 2^24 are exact in float32; ArgMax on floats runs everywhere (TensorRT too) and,
        # like torch, returns the first of equal maxima.
        end = input_ids.to(torch.float32).argmax(dim=-1)
        index = end.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
        pooled = hidden.gather(1, index).squeeze(1)
        return nn.functional.normalize(self.text_projection(pooled), p=2.0, dim=1)


def _vision_model(values: dict[str, Any]) -> Any:
    _offline()
    from transformers import CLIPVisionConfig, CLIPVisionModel  # export side only

    # Eager attention: plain MatMul/Softmax, which ORT, OpenVINO and TensorRT fuse themselves.
    return CLIPVisionModel(CLIPVisionConfig(**(values | {"attn_implementation": "eager"})))


def _text_model(values: dict[str, Any]) -> Any:
    _offline()
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**(values | {"attn_implementation": "eager"})))


def _build_visual() -> nn.Module:
    return ImageEmbedder(_vision_model(VISION_CONFIG), EMBEDDING_SIZE)


def _build_visual_tiny() -> nn.Module:
    return ImageEmbedder(_vision_model(TINY_VISION_CONFIG), EMBEDDING_SIZE)


def _build_textual() -> nn.Module:
    return TextEmbedder(_text_model(TEXT_CONFIG), EMBEDDING_SIZE, VOCAB_SIZE)


def _build_textual_tiny() -> nn.Module:
    return TextEmbedder(_text_model(TINY_TEXT_CONFIG), EMBEDDING_SIZE, VOCAB_SIZE)


# --- official weights: a local snapshot of the Hugging Face repository ------------------------


def _checked(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise WeightsError(f"clip_vit_b32: {path} is missing (place the snapshot's {name} there)")
    digest = sha256_of(path)
    if digest != SHA256[name]:
        raise WeightsError(f"clip_vit_b32: {path} has sha256 {digest}, expected {SHA256[name]}")
    return path


def check_config(folder: Path) -> dict[str, Any]:
    """The snapshot's config.json, hash checked, stating the architecture of the spec. Read
    through transformers' CLIPConfig, so a key the 2021 file leaves out is transformers'
    default (e.g. num_channels, 3)."""
    import json

    _offline()
    from transformers import CLIPConfig

    stated = json.loads(_checked(folder, CONFIG_FILE).read_text())
    config = CLIPConfig.from_dict(stated)
    differing = {
        f"{part}.{key}": (value, getattr(sub, key, None))
        for part, sub, values in (
            ("text", config.text_config, TEXT_CONFIG),
            ("vision", config.vision_config, VISION_CONFIG),
        )
        for key, value in values.items()
        if getattr(sub, key, None) != value
    }
    differing |= {
        k: (v, getattr(config, k, None))
        for k, v in CLIP_CONFIG.items()
        if getattr(config, k, None) != v
    }
    if differing or stated.get("architectures") != ["CLIPModel"]:
        raise WeightsError(
            f"clip_vit_b32: {folder / CONFIG_FILE} differs from the spec: {differing}"
        )
    return dict(stated)


@cache
def _official_state(weights: Path) -> StateDict:
    """Every tensor of pytorch_model.bin (its hash was checked by the caller), keyed as
    CLIPModel keys them."""
    check_config(weights.parent)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"clip_vit_b32: {weights} holds no state dict")
    # Buffers older transformers saved; CLIPModel now rebuilds them.
    skip = {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"}
    return {k: v for k, v in state.items() if k not in skip and isinstance(v, torch.Tensor)}


# The snapshot folder the export last read official weights from (its --weights-dir), where
# the reference then reads the same files.
_SNAPSHOT_READ: list[Path] = []


def _tower(prefixes: tuple[str, ...]) -> Callable[[Path], StateDict]:
    def convert(path: Path) -> StateDict:
        state = _official_state(_checked(path.parent, WEIGHTS_FILE))
        _SNAPSHOT_READ[:] = [path.parent]
        return {k: v for k, v in state.items() if k.startswith(prefixes)}

    return convert


def _official(prefixes: tuple[str, ...]) -> OfficialWeights:
    return OfficialWeights(
        filename=f"{SNAPSHOT}/{WEIGHTS_FILE}",
        url=f"{UPSTREAM}/{WEIGHTS_FILE}",
        sha256=SHA256[WEIGHTS_FILE],
        licence=LICENCE,
        state_keys=(),
        convert=_tower(prefixes),
        download=False,
    )


# --- synthetic weights ----------------------------------------------------------------------


def _init_std(key: str, value: torch.Tensor, layers: int) -> float | None:
    """The standard deviation transformers' CLIP initialisation gives the weight `key`
    (CLIPPreTrainedModel._init_weights, initializer_factor 1); None: left as seeded."""
    width = float(value.shape[-1])
    depth = float((2.0 * layers) ** -0.5)
    if key.endswith(
        ("position_embedding.weight", "token_embedding.weight", "patch_embedding.weight")
    ):
        return 0.02
    if key.endswith("class_embedding"):
        return float(width**-0.5)
    if key.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "fc2.weight")):
        return float(float(value.shape[0] if key.endswith("fc2.weight") else width) ** -0.5 * depth)
    if key.endswith("out_proj.weight"):
        return float(width**-0.5)
    if key.endswith("fc1.weight"):
        return float((2.0 * width) ** -0.5)
    if key.endswith("projection.weight"):
        return float(width**-0.5)
    return None


def at_init_scale(state: StateDict) -> StateDict:
    """The generic seeded values rescaled to CLIP's own initialisation: each weight matrix to
    the standard deviation transformers gives it, LayerNorm gains around 1 (not 0.01, which
    would flatten every token to the LayerNorm bias). At the generic 0.1× Kaiming scale the
    class token barely depends on the image (cosine 0.9995 between unrelated photos)."""
    layers = 1 + max(
        (int(k.split("encoder.layers.")[1].split(".")[0]) for k in state if "encoder.layers." in k),
        default=0,
    )
    adjusted: StateDict = {}
    for key, value in state.items():
        std = _init_std(key, value, layers)
        if key.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
            adjusted[key] = value + 1
        elif std is not None and value.numel() > 1:
            adjusted[key] = value * (std / float(value.std()))
        else:
            adjusted[key] = value
    return adjusted


def _synthetic_module(build: Callable[[], nn.Module]) -> nn.Module:
    """What the export installs for `--weights synthetic`: the seeded values, rescaled."""
    module: nn.Module = build()
    module.load_state_dict(at_init_scale(synthetic_weights(module).state_dict), strict=True)
    return module.eval()


# --- the reference: transformers' CLIPModel with the same weights ---------------------------


def _clip_model(kind: WeightKind) -> Any:
    """transformers' own CLIPModel (its default attention, its own causal mask) holding the
    weights the export installs for `kind`."""
    _offline()
    from transformers import CLIPConfig, CLIPModel

    if kind == "official":
        folder = _SNAPSHOT_READ[0] if _SNAPSHOT_READ else Path("weights") / SNAPSHOT
        path = _checked(folder, WEIGHTS_FILE)
        model: Any = CLIPModel(CLIPConfig.from_dict(check_config(folder)))
        model.load_state_dict(_official_state(path), strict=True)
        model.eval()
        return model
    config = CLIPConfig(text_config=TEXT_CONFIG, vision_config=VISION_CONFIG, **CLIP_CONFIG)
    model = CLIPModel(config)
    towers = {
        key: value
        for build in (_build_visual, _build_textual)
        for key, value in _synthetic_module(build).state_dict().items()
    }
    missing, unexpected = model.load_state_dict(towers, strict=False)
    if unexpected or missing != ["logit_scale"]:  # the one tensor neither tower uses
        raise WeightsError(f"clip_vit_b32: towers vs CLIPModel: {missing=} {unexpected=}")
    model.eval()
    return model


@cache
def reference_model(kind: WeightKind) -> Any:
    if kind == "package":
        raise WeightsError("clip_vit_b32: no registry package ships these weights")
    return _clip_model(kind)


def image_processor() -> Any:
    """transformers' CLIPImageProcessor pipeline with its PIL backend (the default backend
    needs torchvision, which this project does not install; the steps and defaults are the
    same: shortest side to 224 bicubic, centre crop 224², rescale, CLIP mean/std)."""
    _offline()
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil()


def reference_photos() -> Array:
    photos = np.empty(len(PHOTOS), dtype=object)
    for index, name in enumerate(PHOTOS):
        photos[index] = np.ascontiguousarray(getattr(skimage_data, name)())
    return photos


def processor_crops(photos: Array) -> dict[str, Array]:
    """The photos resized and cropped by CLIPImageProcessor, before its rescale and
    normalisation (which run inside the graph): uint8 [N, 224, 224, 3]."""
    processed = image_processor()(
        list(photos),
        do_rescale=False,
        do_normalize=False,
        return_tensors="np",
        input_data_format="channels_last",
    )["pixel_values"]
    crops = np.asarray(processed).transpose(0, 2, 3, 1)
    return {"image": np.ascontiguousarray(np.round(crops).astype(np.uint8))}


def _image_features(kind: WeightKind) -> Callable[[Array], Array]:
    def run(photos: Array) -> Array:
        pixels = image_processor()(
            list(photos), return_tensors="pt", input_data_format="channels_last"
        )["pixel_values"]
        with torch.no_grad():
            features = reference_model(kind).get_image_features(pixel_values=pixels)
        vectors = nn.functional.normalize(features.pooler_output, p=2.0, dim=1)
        return np.asarray(vectors.numpy(), np.float32)

    return run


@cache
def open_clip_tokenizer() -> ModuleType:
    """open_clip's tokenizer module (the original OpenAI tokenizer, ftfy cleaning included),
    loaded from its file: importing the package would need torchvision."""
    from importlib import metadata

    path = Path(
        str(metadata.distribution(clip_vocab.PACKAGE).locate_file("open_clip/tokenizer.py"))
    )
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    if spec is None or spec.loader is None:
        raise WeightsError(f"clip_vit_b32: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_clip_ids(texts: Array) -> Array:
    """The texts as open_clip's SimpleTokenizer gives them: int64 [N, 77]."""
    tokenizer = open_clip_tokenizer().SimpleTokenizer(bpe_path=str(clip_vocab.vocab_file()))
    return np.asarray(tokenizer([str(t) for t in texts]).numpy())


def _text_features(kind: WeightKind) -> Callable[[Array], Array]:
    def run(texts: Array) -> Array:
        ids = torch.from_numpy(open_clip_ids(texts))
        with torch.no_grad():
            features = reference_model(kind).get_text_features(input_ids=ids)
        vectors = nn.functional.normalize(features.pooler_output, p=2.0, dim=1)
        return np.asarray(vectors.numpy(), np.float32)

    return run


# --- validation inputs ------------------------------------------------------------------------


def _square(photo: Array) -> Array:
    """A real photo at the served size, for the ORT-vs-PyTorch checks (any resize serves)."""
    import cv2

    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(photo[top : top + side, left : left + side])
    return np.asarray(cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA))


def visual_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    """The astronaut and the cat at 224², uint8 NHWC."""
    cat = skimage_data.chelsea()  # type: ignore[no-untyped-call]
    photos = [_square(samples.astronaut()), _square(cat)][:batch]
    return {"image": np.ascontiguousarray(np.stack(photos))}


def visual_sample() -> Array:
    return visual_feeds(2, False)["image"]


@cache
def tokenizer_file() -> Path:
    """tokenizer.json built from the pinned vocabulary file, in the ignored build folder."""
    root = Path(__file__).resolve().parents[2]
    return clip_vocab.write_tokenizer(root / "build" / "clip_tokenizer" / "tokenizer.json")


@cache
def provenance_file() -> Path:
    import json

    facts = clip_vocab.provenance() | {"tokenizer_sha256": sha256_of(tokenizer_file())}
    path = tokenizer_file().with_name(PROVENANCE_FILE)
    path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return path


@cache
def _tokenizer() -> Any:
    return clip_tokenizer.load_tokenizer(tokenizer_file(), CONTEXT_LENGTH)


def tokenise(texts: Array) -> dict[str, Array]:
    """Texts as `embed_clip_text` sends them to the text tower (serving/bls/clip_tokenizer.py)."""
    return {"input_ids": clip_tokenizer.encode(_tokenizer(), [str(t) for t in texts])}


def textual_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    if tiny:
        ids = np.zeros((len(TINY_IDS), CONTEXT_LENGTH), np.int32)
        for row, sequence in enumerate(TINY_IDS):
            ids[row, : len(sequence)] = sequence
    else:
        ids = tokenise(np.array(TEXTS[:2], dtype=object))["input_ids"]
    return {"input_ids": np.ascontiguousarray(ids[:batch])}


def textual_sample() -> Array:
    return textual_feeds(2, False)["input_ids"]


def reference_texts() -> Array:
    return np.array(TEXTS, dtype=object)


VISUAL_OFFICIAL = _official(("vision_model.", "visual_projection."))
TEXTUAL_OFFICIAL = _official(("text_model.", "text_projection."))
SYNTHETIC_AND_OFFICIAL: tuple[WeightKind, ...] = ("official", "synthetic")

# Both towers batch alike. ONNX Runtime FP32, 2 threads, on the 2-core AVX2 EPYC (load ~2):
# one image is ~4.4 GFLOP, batch 1 84 ms, 4 275 ms, 8 489 ms, 16 1,126 ms (61 ms an image at 8,
# 70 at 16); every text is 77 positions (~6 GFLOP: the causal mask does not shorten the work),
# batch 1 53 ms, 8 374 ms, 16 1,056 ms, 32 1,879 ms (47 ms a text at 8, 59–66 past it). Batches
# past 8 buy nothing on this CPU, and 16 bound one execution to ~1 s (a search query is one
# text; indexing sends captions in bulk). A 2 ms wait lets concurrent uploads and queries share
# an execution.
TOWER_BATCHING = Batching(
    max_batch_size=16,
    preferred_batch_sizes=(4, 8),
    max_queue_delay_us=2000,
    max_queue_size=64,
    instances=1,
    intra_op_threads=2,
)


def _tower_spec(
    *,
    name: str,
    description: str,
    build: Callable[[], nn.Module],
    build_tiny: Callable[[], nn.Module],
    tower_input: TensorSpec,
    sample: Callable[[], Array],
    official: OfficialWeights,
    reference: ReferenceCheck,
    tensorrt: TensorRTProfile,
    feeds: Callable[[int, bool], dict[str, Array]],
) -> ModelSpec:
    """A CLIP tower: one input → its 512-d L2-normalised embedding, with what both towers share
    (opset, tolerance, batching, ONNX Runtime FP32 on the CPU, synthetic weights at the
    initialisation's scale)."""
    return ModelSpec(
        name=name,
        description=description,
        build=build,
        build_tiny=build_tiny,
        inputs=(tower_input,),
        outputs=(TensorSpec("embedding", "TYPE_FP32", (EMBEDDING_SIZE,)),),
        opset=OPSET,
        opset_reason=OPSET_REASON,
        atol=ATOL,
        batching=TOWER_BATCHING,
        sample=sample,
        official=official,
        reference=reference,
        tensorrt=tensorrt,
        # Measured by the install here (synthetic weights, 2 threads). Image tower, one 224²
        # photo: ONNX Runtime FP32 84 ms vs OpenVINO FP32 130 ms at load ~2 (ONNX Runtime); on
        # the box shared at load ~3, 252 vs 181 ms in one install and 264–306 vs 215–256 ms in
        # three alternating runs (OpenVINO 1.03–1.39×). Text tower, one text, a busy box: 116 ms
        # vs 115 ms (1.00×, below the 1.10× a switch needs). The quiet measurements are the
        # committed plan; each install measures again and serves its own choice.
        cpu_plan=("onnxruntime", "f32"),
        synthetic_adjust=at_init_scale,
        feeds=feeds,
    )


def _transformers_reference(
    *,
    description: str,
    features: Callable[[WeightKind], Callable[[Array], Array]],
    sample: Callable[[], Array],
    feeds: Callable[[Array], dict[str, Array]],
    sample_label: str,
) -> ReferenceCheck:
    """The check of a tower against transformers' CLIPModel with the same weights (`features`
    of the weight kind), on `sample` as the reference sees it and as `feeds` gives it the
    graph."""
    return ReferenceCheck(
        name="transformers_clip",
        description=description,
        applies_to=SYNTHETIC_AND_OFFICIAL,
        min_psnr_db=None,
        run=features("synthetic"),
        run_for=features,
        image=sample,
        vector=REFERENCE_TOLERANCE,
        feeds=feeds,
        sample_label=sample_label,
    )


CLIP_VIT_B32_VISUAL = _tower_spec(
    name="clip_vit_b32_visual",
    description="CLIP ViT-B/32 image tower: uint8 RGB [B, 224, 224, 3] (resized so the shortest "
    "side is 224 and centre-cropped, as CLIPImageProcessor does) → CLIP mean/std in the graph → "
    "512-d embedding, L2-normalised (cosine with clip_vit_b32_textual = dot product)",
    build=_build_visual,
    build_tiny=_build_visual_tiny,
    tower_input=TensorSpec("image", "TYPE_UINT8", (IMAGE_SIZE, IMAGE_SIZE, 3)),
    sample=visual_sample,
    official=VISUAL_OFFICIAL,
    reference=_transformers_reference(
        description="transformers CLIPModel.get_image_features (L2-normalised) with the same "
        "weights on CLIPImageProcessor's pixel values; the graph gets the processor's resized "
        "and cropped uint8 pixels",
        features=_image_features,
        sample=reference_photos,
        feeds=processor_crops,
        sample_label="scikit-image's astronaut 512x512, chelsea 451x300 and coffee 600x400 "
        "photos, one batch",
    ),
    # [B, 224, 224, 3]: the gateway indexes photos DEFAULT_CONTEXT_BATCH_IMAGES at a time, one
    # call per batch (within the batch limit): that batch is the optimum, the limit the maximum.
    tensorrt=batch_profile(
        (IMAGE_SIZE, IMAGE_SIZE, 3),
        opt_batch=min(DEFAULT_CONTEXT_BATCH_IMAGES, TOWER_BATCHING.max_batch_size),
        max_batch=TOWER_BATCHING.max_batch_size,
        source=f"the gateway's context batches: DEFAULT_CONTEXT_BATCH_IMAGES "
        f"({DEFAULT_CONTEXT_BATCH_IMAGES}, FACET_CONTEXT_BATCH_IMAGES' default) photos of "
        f"{IMAGE_SIZE}² per call, within max_batch_size ({TOWER_BATCHING.max_batch_size})",
    ),
    feeds=visual_feeds,
)

CLIP_VIT_B32_TEXTUAL = _tower_spec(
    name="clip_vit_b32_textual",
    description="CLIP ViT-B/32 text tower: int32 token ids [B, 77] (CLIP's BPE, <|startoftext|> "
    "… <|endoftext|>, zero-padded; the tokenizer.json built from open_clip_torch "
    f"{clip_vocab.PACKAGE_VERSION}'s bpe_simple_vocab_16e6.txt.gz) → 512-d embedding at "
    "<|endoftext|>, L2-normalised; `embed_clip_text` takes strings",
    build=_build_textual,
    build_tiny=_build_textual_tiny,
    tower_input=TensorSpec("input_ids", "TYPE_INT32", (CONTEXT_LENGTH,)),
    sample=textual_sample,
    official=TEXTUAL_OFFICIAL,
    reference=_transformers_reference(
        description="transformers CLIPModel.get_text_features (L2-normalised) with the same "
        "weights on open_clip's SimpleTokenizer ids (the original OpenAI tokenizer); the graph "
        "gets embed_clip_text's ids (serving/bls/clip_tokenizer.py)",
        features=_text_features,
        sample=reference_texts,
        feeds=tokenise,
        sample_label=f"{len(TEXTS)} texts (captions, punctuation and numbers, unicode, empty, "
        f"one cut at {CONTEXT_LENGTH} tokens), tokenised by the tokenizer.json built from "
        f"{clip_vocab.PACKAGE}=={clip_vocab.PACKAGE_VERSION}:{clip_vocab.VOCAB_FILE} "
        f"(sha256 {clip_vocab.VOCAB_SHA256})",
    ),
    # [B, 77]: the gateway sends one text per search query (and a classification's label
    # prompts, embedded once for the default set); concurrent queries are merged by Triton's
    # dynamic batcher up to its largest preferred batch size: that batch is the optimum, the
    # batch limit (embed_clip_text's chunk) the maximum.
    tensorrt=batch_profile(
        (CONTEXT_LENGTH,),
        opt_batch=max(TOWER_BATCHING.preferred_batch_sizes),
        max_batch=TOWER_BATCHING.max_batch_size,
        source=f"Triton's dynamic batching of the gateway's one-text queries: the largest "
        f"preferred batch size ({max(TOWER_BATCHING.preferred_batch_sizes)}) of "
        f"{CONTEXT_LENGTH}-id rows (serving/bls/clip_tokenizer.py CONTEXT_LENGTH)",
    ),
    feeds=textual_feeds,
)

TOKENIZER_FILE = "tokenizer.json"
PROVENANCE_FILE = "tokenizer_source.json"
MAX_TEXTS = 256
# ~50× what 77 tokens can hold: longer texts would only be cut after costing their whole
# tokenisation, so they are refused instead.
MAX_TEXT_BYTES = 16_384
EMBED_CLIP_TEXT = text_embedding_model(
    name="embed_clip_text",
    description="UTF-8 texts → CLIP ViT-B/32 text embeddings (tokenised inside Triton), via BLS",
    encoder=CLIP_VIT_B32_TEXTUAL,
    tokenizer_parameters=(("context_length", str(CONTEXT_LENGTH)),),
    max_texts=MAX_TEXTS,
    max_text_bytes=MAX_TEXT_BYTES,
    tokenizer_file=(TOKENIZER_FILE, tokenizer_file),
    embedding=f"{EMBEDDING_SIZE}-d CLIP text embedding, L2-normalised: its dot product with a "
    f"clip_vit_b32_visual embedding is their cosine; texts cut at {CONTEXT_LENGTH} tokens",
    tokenizer_sources=("clip_tokenizer.py",),
    other_files=((PROVENANCE_FILE, provenance_file),),
)
