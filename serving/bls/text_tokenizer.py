"""Text → token ids for the sentence encoder, as sentence-transformers prepares them, with the
Rust `tokenizers` library alone (no torch, no transformers).

Triton's Python backend imports a model's files from that model's own folder only, so
`python -m export` copies this file into `embed_text/1/` (edit it here); the export also feeds
its validation sentences through it, so the served tokenisation is the checked one.

all-MiniLM-L6-v2's `tokenizer.json` pads and truncates every text to 128 tokens (upstream's
file says so), while sentence-transformers truncates at the model's `max_seq_length` (256) and
pads a batch to its longest text. `load_tokenizer` therefore drops the file's padding and sets
the truncation; `pad_batch` pads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

Array = npt.NDArray[Any]
# Texts of one encoder call are padded to one of a few lengths (16, 32, …, max_length), so
# concurrent requests often share a shape and Triton's dynamic batcher can merge them (it only
# merges equal shapes) and a TensorRT engine sees few shapes. Padding costs at most 2× the
# tokens; the masked mean pooling ignores padded positions.
MIN_PADDED_LENGTH = 16
PAD_ID = 0  # [PAD] in the BERT-uncased vocabulary


class TextError(ValueError):
    """A text the encoder cannot take (not UTF-8, too long in bytes)."""


@dataclass(frozen=True)
class TokenBatch:
    """Texts as the encoder takes them: int32 [N, L] ids and mask (1 = a real token)."""

    input_ids: Array
    attention_mask: Array


def load_tokenizer(path: Path | str, max_length: int) -> Tokenizer:
    """The tokenizer of `path` (a tokenizer.json) truncating at `max_length` tokens, [CLS] and
    [SEP] included, and padding nothing."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    return tokenizer


def decode_texts(raw: Array, max_bytes: int) -> list[str]:
    """A BYTES tensor's elements as strings: UTF-8, each at most `max_bytes` long."""
    texts = []
    for index, item in enumerate(raw.reshape(-1)):
        data = item if isinstance(item, bytes) else str(item).encode()
        if len(data) > max_bytes:
            raise TextError(f"text {index} has {len(data)} bytes, more than {max_bytes}")
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise TextError(f"text {index} is not UTF-8: {error}") from error
    return texts


def token_ids(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's ids, [CLS] … [SEP], truncated as the tokenizer was loaded."""
    return [list(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]


def padded_length(longest: int, max_length: int) -> int:
    """The length a batch whose longest text has `longest` tokens is padded to."""
    length = MIN_PADDED_LENGTH
    while length < longest:
        length *= 2
    return min(length, max_length)


def pad_batch(ids: Sequence[Sequence[int]], length: int) -> TokenBatch:
    """Right-pad every id list to `length` with [PAD], with its attention mask."""
    input_ids = np.full((len(ids), length), PAD_ID, dtype=np.int32)
    attention_mask = np.zeros((len(ids), length), dtype=np.int32)
    for row, sequence in enumerate(ids):
        if len(sequence) > length:
            raise ValueError(f"row {row} has {len(sequence)} tokens, more than {length}")
        input_ids[row, : len(sequence)] = sequence
        attention_mask[row, : len(sequence)] = 1
    return TokenBatch(input_ids, attention_mask)


def chunk_by_length(lengths: Sequence[int], max_batch: int) -> list[Array]:
    """Row indices in chunks of at most `max_batch`, shortest texts together, so each chunk is
    padded little; the caller puts the results back in the original order."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + max_batch] for start in range(0, len(order), max_batch)]


def encoder_batches(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, max_batch: int
) -> list[tuple[Array, TokenBatch]]:
    """The texts as encoder calls: (row indices into `texts`, their padded tokens) per call."""
    ids = token_ids(tokenizer, texts)
    batches = []
    for rows in chunk_by_length([len(i) for i in ids], max_batch):
        chosen = [ids[int(r)] for r in rows]
        length = padded_length(max(len(i) for i in chosen), max_length)
        batches.append((rows, pad_batch(chosen, length)))
    return batches
