"""Text → CLIP token ids, as the original CLIP tokenises, with the Rust `tokenizers` library and
the standard library alone (no torch, no transformers, no ftfy).

Triton's Python backend imports a model's files from that model's own folder only, so
`python -m export` copies this file into `embed_clip_text/1/` (edit it here), next to the
`tokenizer.json` that export/clip_vocab.py builds from CLIP's own BPE vocabulary; the export
also feeds its validation texts through it, so the served tokenisation is the checked one.

CLIP (openai/CLIP and open_clip's SimpleTokenizer) cleans a text with ftfy and HTML unescaping,
collapses whitespace, lowercases, splits it with its regex and byte-level BPE-encodes each
piece; it then writes <|startoftext|> … <|endoftext|> into a row of 77 ids padded with 0, a
longer text cut to 75 tokens so that <|endoftext|> stays at position 76. Here `clean` does
what ftfy does character by character (control characters dropped, Latin ligatures and
full-width forms spelt out, curly quotes made straight, NFC), CLIP's HTML unescaping (twice)
and its lowercasing (Python's, which knows the Greek final sigma); tokenizer.json does the rest
(whitespace, the regex, BPE, the two special tokens, the cut at 77). ftfy's repairs of
mojibake (text decoded with the wrong codec) are guesses and are not reproduced: such text
tokenises differently from CLIP.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

Array = npt.NDArray[Any]
CONTEXT_LENGTH = 77  # CLIP's text context: every row has exactly this many ids
START_OF_TEXT = 49406  # <|startoftext|>
END_OF_TEXT = 49407  # <|endoftext|>, where the text tower pools
PAD_ID = 0  # CLIP pads with 0 after <|endoftext|> (the causal mask never lets it be seen)
# ftfy's character fixes as one translation table (ftfy.fixes: remove_control_chars,
# fix_latin_ligatures, fix_character_width, uncurl_quotes).
_CONTROLS = [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070)]
_CONTROLS += [0xFEFF, *range(0xFFF9, 0xFFFD)]
# Latin ligatures and digraphs, spelt out (ﬅ as ſt, where NFKC would give st).
_LIGATURES = {
    0x0132: "IJ", 0x0133: "ij", 0x0149: "\u02bcn",
    0x01C4: "D\u017d", 0x01C5: "D\u017e", 0x01C6: "d\u017e",
    0x01C7: "LJ", 0x01C8: "Lj", 0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj",
    0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
    0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl",
    0xFB05: "\u017ft", 0xFB06: "st",
}  # fmt: skip
# Half- and full-width forms (U+FF01–U+FFEF) as their usual characters, the ideographic space
# as a space.
_WIDTH = {
    code: unicodedata.normalize("NFKC", chr(code))
    for code in range(0xFF01, 0xFFF0)
    if unicodedata.normalize("NFKC", chr(code)) != chr(code)
} | {0x3000: " "}
_QUOTES = {code: "'" for code in (0x02BC, 0x2018, 0x2019, 0x201A, 0x201B)} | {
    code: '"' for code in (0x201C, 0x201D, 0x201E, 0x201F)
}
_FIXES: dict[int, str | None] = {code: None for code in _CONTROLS}
_FIXES |= _LIGATURES | _WIDTH | _QUOTES


def load_tokenizer(path: Path | str, context_length: int = CONTEXT_LENGTH) -> Tokenizer:
    """The tokenizer of `path` (tokenizer.json) cutting at `context_length` ids, the two special
    tokens included, and padding nothing."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=context_length, direction="right")
    return tokenizer


def clean(text: str) -> str:
    """CLIP's basic_clean and lowercasing as far as they are deterministic: ftfy's character
    fixes and NFC, HTML entities decoded twice, lowercase."""
    fixed = unicodedata.normalize("NFC", text.translate(_FIXES))
    return html.unescape(html.unescape(fixed)).lower()


def token_ids(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's ids, <|startoftext|> … <|endoftext|>, cut as the tokenizer was loaded."""
    cleaned = [clean(text) for text in texts]
    return [list(encoding.ids) for encoding in tokenizer.encode_batch(cleaned)]


def encode(
    tokenizer: Tokenizer, texts: Sequence[str], context_length: int = CONTEXT_LENGTH
) -> Array:
    """The texts as the text tower takes them: int32 [N, context_length], zero-padded."""
    rows = np.zeros((len(texts), context_length), dtype=np.int32)
    for row, ids in enumerate(token_ids(tokenizer, texts)):
        if len(ids) > context_length or ids[-1] != END_OF_TEXT:
            raise ValueError(f"text {row}: the tokenizer gave {len(ids)} ids not ending in EOT")
        rows[row, : len(ids)] = ids
    return rows
