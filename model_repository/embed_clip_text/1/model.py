"""embed_clip_text: UTF-8 texts → CLIP ViT-B/32 text embeddings (Python backend, BLS).

Tokenisation runs here, inside Triton, with the tokenizer.json that `python -m export` builds
from CLIP's own BPE vocabulary and installs next to this file, and `clip_tokenizer.py` /
`text_tokenizer.py`, copied from serving/bls/. Every text becomes one row of 77 ids, so a
request's texts are cut into chunks of the encoder's batch limit, sent to
`clip_vit_b32_textual` together and joined in request order. Reading the request, the encoder
calls and the answer are `text_encoder_io.py`'s, shared with embed_text.

Input:  text BYTES [N] (UTF-8; N ≤ max_texts, each ≤ max_text_bytes).
Output: embedding FP32 [N, 512], L2-normalised (its dot product with a clip_vit_b32_visual
        embedding is their cosine).
A malformed request gets INVALID_ARG; a failing encoder call fails only its request, with the
encoder's own error code (e.g. UNAVAILABLE when its queue is full).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The Rust tokenizer would start a thread pool per process; texts are short and the two cores
# belong to the encoder.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import clip_tokenizer as clip  # found through the line above; installed by `python -m export`
import text_encoder_io as bls


class TritonPythonModel(bls.TextEncoderModel):
    name = "embed_clip_text"
    length_parameter = "context_length"
    load_tokenizer = staticmethod(clip.load_tokenizer)

    def encoder_calls(self, texts: list[str]) -> list[bls.EncoderCall]:
        ids = clip.encode(self.tokenizer, texts, self.length)
        rows = np.arange(len(ids))
        chunks = [rows[s : s + self.max_batch] for s in range(0, len(rows), self.max_batch)]
        return [(chunk, {"input_ids": ids[chunk]}) for chunk in chunks]
