"""The tokenizer embed_text runs inside Triton (serving/bls/text_tokenizer.py, the Rust
`tokenizers` library alone) gives the ids transformers' own tokenizer gives for the model, and
pads, buckets and chunks as the encoder needs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from export.models.minilm import MAX_SEQ_LENGTH, package_folder, tokenizer_file
from serving.bls import text_tokenizer as text
from tests.imports import imported_packages

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

TEXTS = [
    "a photo of a cat",
    "A Kitten On A SOFA!",  # uncased
    "Ünïcödé café crème, naïve façade",  # accents stripped by the uncased normaliser
    "東京の猫と北京の狗",  # CJK split per character
    "emoji 🐱🚀 and symbols © ™ ½",
    "",
    "   ",
    "tabs\tand\nnewlines\r\nand\u200bzero-width",
    "supercalifragilisticexpialidocious " * 3,
    "x" * 150,  # one word past WordPiece's 100 characters: [UNK]
    "The quick brown fox jumps over the lazy dog. " * 60,  # far past 256 tokens
]


@pytest.fixture(scope="module")
def tokenizer():
    return text.load_tokenizer(tokenizer_file(), MAX_SEQ_LENGTH)


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(package_folder()), local_files_only=True)


def test_ids_equal_transformers_autotokenizer_on_every_kind_of_text(tokenizer, reference) -> None:
    ours = text.token_ids(tokenizer, TEXTS)
    theirs = reference(TEXTS, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
    for text_, mine, expected in zip(TEXTS, ours, theirs, strict=True):
        assert mine == list(expected), text_[:40]


def test_long_texts_are_cut_at_256_tokens_and_still_end_with_sep(tokenizer) -> None:
    (ids,) = text.token_ids(tokenizer, [TEXTS[-1]])
    assert len(ids) == MAX_SEQ_LENGTH
    assert (ids[0], ids[-1]) == (101, 102)  # [CLS] … [SEP]


def test_the_files_own_128_token_padding_is_dropped(tokenizer) -> None:
    """tokenizer.json as shipped pads every text to 128 tokens; the served one pads nothing."""
    assert text.token_ids(tokenizer, ["", "a cat"]) == [[101, 102], [101, 1037, 4937, 102]]


@pytest.mark.parametrize(
    ("longest", "padded"),
    [(1, 16), (2, 16), (16, 16), (17, 32), (100, 128), (129, 256), (256, 256)],
)
def test_batches_are_padded_to_a_few_lengths(longest: int, padded: int) -> None:
    assert text.padded_length(longest, MAX_SEQ_LENGTH) == padded


def test_padding_fills_pad_ids_and_masks_them_out() -> None:
    batch = text.pad_batch([[101, 7, 102], [101, 102]], 4)
    assert batch.input_ids.dtype == np.int32 and batch.attention_mask.dtype == np.int32
    assert batch.input_ids.tolist() == [[101, 7, 102, 0], [101, 102, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    with pytest.raises(ValueError, match="more than"):
        text.pad_batch([[1, 2, 3]], 2)


def test_chunks_group_similar_lengths_and_cover_every_row_once() -> None:
    lengths = [30, 3, 200, 3, 17, 5]
    chunks = text.chunk_by_length(lengths, max_batch=4)
    assert [len(c) for c in chunks] == [4, 2]
    assert sorted(int(r) for c in chunks for r in c) == list(range(len(lengths)))
    assert [lengths[int(r)] for r in chunks[0]] == [3, 3, 5, 17]


def test_encoder_batches_respect_the_batch_limit(tokenizer) -> None:
    texts = [f"text number {i} " * (i % 7) for i in range(70)]
    batches = text.encoder_batches(tokenizer, texts, MAX_SEQ_LENGTH, max_batch=32)
    assert [len(rows) for rows, _ in batches] == [32, 32, 6]
    for rows, batch in batches:
        assert batch.input_ids.shape[0] == len(rows)
        assert batch.input_ids.shape[1] in (16, 32, 64, 128, 256)
        expected = text.token_ids(tokenizer, [texts[int(r)] for r in rows])
        for row, ids in zip(batch.input_ids, expected, strict=True):
            assert row[: len(ids)].tolist() == ids and not row[len(ids) :].any()


def test_bytes_are_decoded_as_utf8_within_the_byte_limit() -> None:
    raw = np.array(["café".encode(), b"", "猫".encode()], dtype=object)
    assert text.decode_texts(raw, max_bytes=8) == ["café", "", "猫"]
    with pytest.raises(text.TextError, match="text 0 is not UTF-8"):
        text.decode_texts(np.array([b"\xff"], dtype=object), max_bytes=8)
    with pytest.raises(text.TextError, match="text 1 has 9 bytes, more than 8"):
        text.decode_texts(np.array([b"ok", b"123456789"], dtype=object), max_bytes=8)


def test_the_tokenizer_module_imports_neither_torch_nor_transformers() -> None:
    assert imported_packages(text) <= {
        "__future__",
        "collections",
        "dataclasses",
        "pathlib",
        "typing",
        "numpy",
        "tokenizers",
    }
