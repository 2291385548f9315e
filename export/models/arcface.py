"""ArcFace w600k_r50 (insightface buffalo_l's recognition model): an aligned 112×112 RGB face →
a 512-d identity embedding.

Official weights: `w600k_r50.onnx` itself (174,383,860 bytes, sha256 pinned), installed through
the official-ONNX path with its input and output renamed by position to `face` / `embedding`
and the batch axis made dynamic if the file fixes it. insightface's pretrained models are for
non-commercial research use only. Otherwise: iresnet50 (export/arch/iresnet.py) with seeded
random weights and the same I/O.

The embedding is not normalised, as the official graph gives it: cosine similarity needs
e / ‖e‖ first (the gateway does that; so must any gRPC client comparing embeddings).
"""

from __future__ import annotations

import math

import torch

from export.arch.iresnet import EMBEDDING_SIZE, iresnet50, iresnet_tiny
from export.models.gfpgan import astronaut_face
from export.spec import (
    Array,
    Batching,
    ModelSpec,
    OfficialWeights,
    StateDict,
    TensorSpec,
    face_chunk_profile,
)

FACE_SIZE = 112
# A face costs 6.3 GMAC (tens of ms on 2 cores), and a group photo brings up to 20 faces in one
# request: 16 takes nearly all of them in one execution at ~50 MB of activations. Waiting 5 ms
# lets concurrent requests' faces share it at a tenth of one face's cost.
BATCHING = Batching(
    max_batch_size=16,
    preferred_batch_sizes=(4, 8, 16),
    max_queue_delay_us=5_000,
    max_queue_size=32,
    instances=1,
    intra_op_threads=2,
)
# The gateway sends every face of a photo (recognition) or of a video window (the swap's
# target identities) in chunks of the embed ensemble's max_batch_size (this model's, through
# export/ensembles.py; gateway/faces/swap_sessions.py): a full chunk is the optimum.
TENSORRT = face_chunk_profile(
    FACE_SIZE, BATCHING, ensemble="embed", crops="crops (gateway/faces/align.py ARCFACE_SIZE)"
)
INSIGHTFACE_LICENCE = (
    "insightface models: non-commercial research only "
    "(https://github.com/deepinsight/insightface#license); code MIT"
)
# The hash that independent projects pinning buffalo_l's files agree on (e.g. uniface's
# weight table, ComfyUI-ReActor's published hashsums); the file is 174,383,860 bytes.
W600K_R50_SHA256 = "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"
# FP32 vs PyTorch, synthetic weights at init scale, astronaut face, batch 2: max |Δ| 5.6e-6
# (ORT) and 6.3e-6 (OpenVINO) on the full model for embeddings of std ~0.7, 8e-7 on the tiny
# one; 24 residual blocks sum in a different order on each runtime. 1e-4 leaves ~16× headroom
# and is still a 1e-4 relative change of the embedding, far below any matching threshold.
ATOL = 1e-4
# Counted on the full architecture (tests/unit/test_swap_arch.py keeps them true): parameters
# with torch (BatchNorm unfolded; the official graph folds it into the convolutions, so its
# 174,383,860 bytes hold ~43.6 M values), MACs per face with FlopCounterMode.
ARCFACE_PARAMETERS = 43_590_848
ARCFACE_GMAC = 6.31


def _sample() -> Array:
    return astronaut_face(FACE_SIZE)


def _rescaled(tensor: torch.Tensor, std: float) -> torch.Tensor:
    return tensor * (std / float(tensor.std()))


# The gain of each block's last BatchNorm: at 1, 24 residual sums grow the embedding to a std
# of ~60 per element; at 0.3 it is ~0.7 (norm ~17), near a trained model's (norm ~20-30).
RESIDUAL_GAIN = 0.3


def at_init_scale(state: StateDict) -> StateDict:
    """The generic seeded values where a network at initialisation has them: convolutions and
    the FC at LeCun scale (1/√fan-in), BatchNorm at unit variance, zero mean and unit gain,
    PReLU slopes 0.25, residual branches at RESIDUAL_GAIN. The generic draw gives negative
    variances (every output NaN), and at its 0.1× Kaiming scale two different faces gave
    embeddings 1e-6 apart."""
    adjusted = dict(state)
    for key, value in state.items():
        prefix = key.rsplit(".", 1)[0]
        if key.endswith("running_var"):
            adjusted[key] = 1.0 + value.abs()
        elif key.endswith("running_mean"):
            adjusted[key] = value * 0.0
        elif key.endswith("bn3.weight"):
            adjusted[key] = RESIDUAL_GAIN + value
        elif key.endswith(".weight") and f"{prefix}.running_var" in state:
            adjusted[key] = 1.0 + value
        elif key.endswith("prelu.weight"):
            adjusted[key] = 0.25 + value
        elif key.endswith(".weight") and value.dim() >= 2:
            adjusted[key] = _rescaled(value, 1 / math.sqrt(value[0].numel()))
    return adjusted


ARCFACE_W600K_R50 = ModelSpec(
    name="arcface_w600k_r50",
    description="ArcFace iresnet50 (insightface buffalo_l w600k_r50): an aligned 112×112 RGB "
    "face, (x − 127.5) / 127.5 → 512-d identity embedding, NOT L2-normalised (as the official "
    "graph); normalise it before comparing (the gateway does)",
    build=iresnet50,
    build_tiny=iresnet_tiny,
    inputs=(TensorSpec("face", "TYPE_FP32", (3, FACE_SIZE, FACE_SIZE)),),
    outputs=(TensorSpec("embedding", "TYPE_FP32", (EMBEDDING_SIZE,)),),
    opset=17,
    opset_reason="convolutions, BatchNorm, PReLU, Flatten and Gemm only; 17 is the TensorRT 8.6 "
    "floor shared by every model in the repository",
    atol=ATOL,
    batching=BATCHING,
    sample=_sample,
    official=OfficialWeights(
        filename="w600k_r50.onnx",
        url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        sha256=W600K_R50_SHA256,
        licence=INSIGHTFACE_LICENCE,
        state_keys=(),
    ),
    tensorrt=TENSORRT,
    requires=("face_to_tensor",),
    input_range=(-1.0, 1.0),
    synthetic_adjust=at_init_scale,
    # Measured on the 2-core AVX2 EPYC, one 112² face, 2 threads, 21 alternating runs at load
    # < 1: ONNX Runtime FP32 101 ms vs OpenVINO FP32 136 ms (median). Under the shared box's
    # load the install once measured 526 vs 460 ms and chose OpenVINO: noise, not a lead.
    cpu_plan=("onnxruntime", "f32"),
)
