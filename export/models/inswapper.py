"""Face swapping the insightface way: `swap_latent` turns an ArcFace embedding into the swapper's
source latent, `inswapper_128` paints that identity onto a 128×128 aligned target face.

Official weights, both from `inswapper_128.onnx` (554,253,681 bytes, sha256 pinned; insightface
models are for non-commercial research use only):
- inswapper_128: the graph itself, installed with its I/O renamed by position and its batch
  axis made dynamic (export/onnx_batch.py: the published graph fixes batch 1; the rewrite is
  checked on ONNX Runtime, batch of 2 against its items one at a time, else a Scan runs the
  untouched graph per face).
- swap_latent: only the graph's last initializer, `emap` (512×512), in our own small model; so
  nothing needs the 500 MB swapper file to compute a latent at serve time.
Otherwise: the re-implementations in export/arch/inswapper.py with seeded random weights.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from export.arch.inswapper import (
    FACE_SIZE,
    LATENT_SIZE,
    SwapLatent,
    inswapper_128,
    inswapper_tiny,
)
from export.errors import WeightsError
from export.models.arcface import INSIGHTFACE_LICENCE
from export.models.gfpgan import astronaut_face
from export.samples import to_nchw_float
from export.spec import Array, Batching, ModelSpec, OfficialWeights, StateDict, TensorSpec

INSWAPPER_FILE = "inswapper_128.onnx"
# The hash that independent projects pinning inswapper_128.onnx agree on (ComfyUI-ReActor's
# published hashsums, roop-lineage installers); 554,253,681 bytes.
INSWAPPER_SHA256 = "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af"
INSWAPPER_URL = (
    "https://github.com/deepinsight/insightface/releases/download/v0.7/inswapper_128.onnx"
)
VALIDATION_SEED = 128

# Counted on the full architecture (tests/unit/test_swap_arch.py keeps them true): parameters
# with torch, MACs per face with torch.utils.flop_counter.FlopCounterMode (convolutions
# 174.56 G, the 24 AdaIN Linears 0.01 G). Published: ~138 M parameters and ~175 GMAC. Our
# exported graph is 553,223,484 bytes; with emap's 1,048,576 bytes that is 554,272,060, within
# 0.004 % of the published file's 554,253,681 (which holds at most 138,563,420 float32s).
INSWAPPER_PARAMETERS = 138_292_739
INSWAPPER_GMAC = 174.58


def validation_faces(batch: int) -> Array:
    """The astronaut's face at 128², then the same face upside down: N×3×128×128 in [0, 1]."""
    face = astronaut_face(FACE_SIZE)
    faces = [to_nchw_float(face), to_nchw_float(np.ascontiguousarray(face[::-1]))][:batch]
    return np.concatenate(faces)


def validation_embeddings(batch: int) -> Array:
    """Seeded stand-ins for raw ArcFace embeddings (norm ~22, like real ones), one per row."""
    rng = np.random.default_rng(VALIDATION_SEED)
    embeddings: Array = rng.standard_normal((2, LATENT_SIZE)).astype(np.float32)
    return embeddings[:batch]


def validation_latents(batch: int) -> Array:
    """Unit-norm latents, as swap_latent gives them."""
    embeddings = validation_embeddings(batch)
    latents: Array = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return latents


def _swap_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    return {"target": validation_faces(batch), "source": validation_latents(batch)}


def _latent_feeds(batch: int, tiny: bool) -> dict[str, Array]:
    return {"embedding": validation_embeddings(batch)}


def latent_reference(model: nn.Module, feeds: dict[str, Array]) -> dict[str, Array]:
    """insightface's own computation, in float64 numpy: normalise, @ emap, normalise."""
    if not isinstance(model, SwapLatent):
        raise TypeError(f"expected SwapLatent, got {type(model).__name__}")
    emap = model.emap.detach().numpy().astype(np.float64)
    embedding = feeds["embedding"].astype(np.float64)
    latent = (embedding / np.linalg.norm(embedding, axis=1, keepdims=True)) @ emap
    latent /= np.linalg.norm(latent, axis=1, keepdims=True)
    return {"latent": latent.astype(np.float32)}


def emap_from_inswapper(path: Path) -> StateDict:
    """The swapper graph's last initializer, the 512×512 emap, as swap_latent's state dict."""
    initializers = onnx.load(str(path)).graph.initializer
    if not initializers:
        raise WeightsError(f"{path.name} has no initializers")
    emap = numpy_helper.to_array(initializers[-1])
    if emap.shape != (LATENT_SIZE, LATENT_SIZE):
        raise WeightsError(
            f"{path.name}: last initializer '{initializers[-1].name}' has shape {emap.shape}, "
            f"expected emap ({LATENT_SIZE}, {LATENT_SIZE})"
        )
    return {"emap": torch.from_numpy(emap.astype(np.float32).copy())}


def _rescaled(tensor: torch.Tensor, std: float) -> torch.Tensor:
    return tensor * (std / float(tensor.std()))


# The AdaIN scale and shift vary by this much across unit-norm latents: enough for the source
# to change the face, with the scale centred on 1 so no block silences its input.
SYNTHETIC_STYLE_STD = 0.3


def swapper_at_init_scale(state: StateDict) -> StateDict:
    """Convolutions at LeCun scale (1/√fan-in) and AdaIN scales of 1 ± 0.3 across latents:
    outputs that span [0, 1] and depend on both the target face and the source latent. At the
    generic 0.1× Kaiming the 13 convolutions leave the output at 0.5 ± 1e-6 everywhere."""
    adjusted: StateDict = {}
    for key, tensor in state.items():
        if key.endswith(".weight") and tensor.dim() == 4:
            tensor = _rescaled(tensor, 1 / math.sqrt(tensor[0].numel()))
        elif ".scale.weight" in key or ".shift.weight" in key:
            tensor = _rescaled(tensor, SYNTHETIC_STYLE_STD)
        elif key.endswith(".scale.bias"):
            tensor = tensor * 0.0 + 1.0
        elif key.endswith(".shift.bias"):
            tensor = tensor * 0.0
        adjusted[key] = tensor
    return adjusted


def _build_latent() -> nn.Module:
    return SwapLatent()


def _latent_sample() -> Array:
    sample: Array = validation_embeddings(1)[0]
    return sample


def _swap_sample() -> Array:
    return astronaut_face(FACE_SIZE)


INSWAPPER_OFFICIAL = OfficialWeights(
    filename=INSWAPPER_FILE,
    url=INSWAPPER_URL,
    sha256=INSWAPPER_SHA256,
    licence=INSIGHTFACE_LICENCE,
    state_keys=(),
)

SWAP_LATENT = ModelSpec(
    name="swap_latent",
    description="inswapper source latent: ArcFace embedding (any norm) → L2-normalise → @ emap "
    "(512×512, the swapper graph's last initializer) → L2-normalise",
    build=_build_latent,
    # Already 1 MiB with no trained parameters: the tiny variant is the model itself.
    build_tiny=_build_latent,
    inputs=(TensorSpec("embedding", "TYPE_FP32", (LATENT_SIZE,)),),
    outputs=(TensorSpec("latent", "TYPE_FP32", (LATENT_SIZE,)),),
    opset=17,
    opset_reason="ReduceL2/Div and MatMul only; 17 is the repository's TensorRT 8.6 floor",
    # Unit vectors: ORT float32 against PyTorch 1.1e-7, against float64 numpy 8e-8, OpenVINO
    # 6e-8 per element; 1e-6 is ~10× that and 1/44 of an element's typical size (1/√512).
    atol=1e-6,
    # Microseconds per latent: batch wide and run on one thread, as the pre/post graphs do.
    batching=Batching(
        max_batch_size=16,
        preferred_batch_sizes=(),
        max_queue_delay_us=0,
        max_queue_size=64,
        instances=1,
        intra_op_threads=1,
    ),
    sample=_latent_sample,
    # The same official file: swap_latent reads only its last initializer.
    official=replace(INSWAPPER_OFFICIAL, convert=emap_from_inswapper),
    feeds=_latent_feeds,
    numpy_reference=latent_reference,
)

INSWAPPER_128 = ModelSpec(
    name="inswapper_128",
    description="inswapper_128 face swapper: an aligned 128×128 RGB target face in [0, 1] and a "
    "source latent (from swap_latent) → the target with the source's identity, in [0, 1]",
    build=inswapper_128,
    build_tiny=inswapper_tiny,
    inputs=(
        TensorSpec("target", "TYPE_FP32", (3, FACE_SIZE, FACE_SIZE)),
        TensorSpec("source", "TYPE_FP32", (LATENT_SIZE,)),
    ),
    outputs=(TensorSpec("swapped", "TYPE_FP32", (3, FACE_SIZE, FACE_SIZE)),),
    opset=17,
    opset_reason="Pad (reflect), Conv, InstanceNormalization, Gemm, Resize (bilinear) and "
    "elementwise ops; 17 is the repository's TensorRT 8.6 floor",
    # FP32 vs PyTorch on the astronaut face and two latents, batch 2: max |Δ| 1.7e-5 (ORT)
    # and 2.3e-5 (OpenVINO) on the full model, 3.3e-6 on the tiny one, for outputs in [0, 1];
    # 1e-4 leaves ~4× headroom and is 1/39 of one 8-bit level (1/255).
    atol=1e-4,
    # A face costs ~175 GMAC (seconds on 2 CPU cores), so waiting 10 ms to pair faces of one
    # frame or of concurrent jobs is free. 8: two faces at FaceFusion's 4-call pixel boost, or
    # one at the 16-call boost in two executions, at ~0.5 GB of activations.
    batching=Batching(
        max_batch_size=8,
        preferred_batch_sizes=(4, 8),
        max_queue_delay_us=10_000,
        max_queue_size=16,
        instances=1,
        intra_op_threads=2,
    ),
    sample=_swap_sample,
    official=INSWAPPER_OFFICIAL,
    requires=("image_to_tensor", "tensor_to_image"),
    output_range=(0.0, 1.0),
    synthetic_adjust=swapper_at_init_scale,
    feeds=_swap_feeds,
    # Measured by the install and again by hand on the 2-core AVX2 EPYC (no BF16), one face,
    # 2 threads: ONNX Runtime FP32 3.8-4.1 s vs OpenVINO FP32 3.9-4.8 s; 8.0 vs 9.6 s under load.
    cpu_plan=("onnxruntime", "f32"),
)
