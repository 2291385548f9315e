"""The CLIP tokenizer embed_clip_text runs inside Triton (tokenizer.json built by
export/clip_vocab.py from CLIP's own vocabulary file, plus serving/bls/clip_tokenizer.py) gives
the ids of the original OpenAI tokenizer (open_clip's SimpleTokenizer, ftfy cleaning included)
and of transformers' CLIPTokenizer built from the same vocabulary, on every kind of text."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from export import clip_vocab
from export.errors import WeightsError
from export.models.clip import open_clip_ids
from serving.bls import clip_tokenizer as clip
from tests.imports import imported_packages

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

TEXTS = [
    "a photo of a cat",
    "A Kitten On A SOFA!!!",  # lowercased; a run of punctuation is one piece
    "It's 3:45 pm, isn't it? 12345 $9.99 #tag @user 50% 1st",  # contractions, digits one by one
    "Ünïcödé café crème, naïve façade",  # accents (NFC)
    "e\u0301le\u0300ve",  # decomposed accents: NFC composes them first
    "東京の猫と北京の狗",  # CJK
    "emoji 🐱🚀👩‍👩‍👧 and symbols © ™ ½ →",  # 4-byte UTF-8, a ZWJ sequence
    "",
    "   ",
    " \t leading, trailing \n and  inner   runs\r\n of\u3000whitespace\u00a0 ",
    "tabs\tand\nnewlines\x0band\x0cfeeds",
    "don’t “quote” ‘me’",  # ftfy uncurls quotes
    "&amp; &lt;b&gt; html &amp;amp; &#39;entities&#39;",  # CLIP unescapes twice
    "ﬁne ﬂow Ĳssel ＦＵＬＬ　ｗｉｄｔｈ ｶﾀｶﾅ",  # ftfy's ligatures and width forms
    "Σίσυφος ΟΔΟΣ İstanbul STRASSE straße",  # Python's lowercase (final sigma, dotted I)
    "zero\u200bwidth soft\u00adhyphen bom\ufeffhere ctrl\x01\x1cchars",
    "supercalifragilisticexpialidocious " * 3,
    "x" * 300,  # one very long word
    "The quick brown fox jumps over the lazy dog. " * 20,  # far past 77 tokens
]


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clip_vocab.write_tokenizer(tmp_path_factory.mktemp("clip") / "tokenizer.json")


@pytest.fixture(scope="module")
def tokenizer(tokenizer_json: Path):
    return clip.load_tokenizer(tokenizer_json)


@pytest.fixture(scope="module")
def transformers_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip_vocab_merges")
    clip_vocab.write_vocab_merges(folder)
    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_ids_equal_open_clips_simple_tokenizer_on_every_kind_of_text(tokenizer) -> None:
    ours = clip.encode(tokenizer, TEXTS)
    theirs = open_clip_ids(np.array(TEXTS, dtype=object))
    assert ours.shape == theirs.shape == (len(TEXTS), clip.CONTEXT_LENGTH)
    for text, mine, expected in zip(TEXTS, ours, theirs, strict=True):
        assert mine.tolist() == expected.tolist(), repr(text[:40])


def test_ids_equal_transformers_clip_tokenizer_from_the_same_vocabulary(
    tokenizer, transformers_tokenizer
) -> None:
    """transformers 5's CLIPTokenizer is CLIP's pipeline without ftfy and HTML unescaping: on
    the cleaned texts it gives our ids."""
    cleaned = [clip.clean(text) for text in TEXTS]
    theirs = transformers_tokenizer(cleaned, truncation=True, max_length=77)["input_ids"]
    for text, mine, expected in zip(TEXTS, clip.token_ids(tokenizer, TEXTS), theirs, strict=True):
        assert mine == list(expected), repr(text[:40])


def test_the_cleaning_is_what_transformers_alone_lacks(tokenizer, transformers_tokenizer) -> None:
    for text in ("don’t", "&amp;", "ﬁne"):
        ours = clip.token_ids(tokenizer, [text])[0]
        assert ours == open_clip_ids(np.array([text], dtype=object))[0][: len(ours)].tolist()
        assert ours != list(transformers_tokenizer(text)["input_ids"])


def test_the_vocabulary_is_clips_49408_ids() -> None:
    vocabulary = clip_vocab.read_vocabulary(clip_vocab.vocab_file())
    ids = vocabulary.ids()
    assert len(vocabulary.tokens) == len(ids) == 49408 == clip_vocab.VOCAB_SIZE
    assert ids["<|startoftext|>"] == clip.START_OF_TEXT == 49406
    assert ids["<|endoftext|>"] == clip.END_OF_TEXT == 49407
    assert vocabulary.tokens[:3] == ("!", '"', "#") and ids["a</w>"] == 256 + ids["a"]
    assert len(vocabulary.merges) == 48894 and vocabulary.tokens[512] == "".join(
        vocabulary.merges[0]
    )


def test_every_byte_has_one_printable_symbol() -> None:
    symbols, order = clip_vocab.byte_symbols(), clip_vocab.byte_order()
    assert len(set(symbols)) == 256 and sorted(order) == list(range(256))
    assert all(s.isprintable() and not s.isspace() for s in symbols)
    for byte, symbol in zip(order, symbols, strict=True):
        if 0x21 <= byte <= 0x7E:
            assert symbol == chr(byte)  # printable ASCII stands for itself


def test_the_vocabulary_file_is_the_pinned_one_and_a_changed_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = clip_vocab.vocab_file()
    assert path.name == "bpe_simple_vocab_16e6.txt.gz"
    assert gzip.decompress(path.read_bytes()).startswith(b'"bpe_simple_vocab_16e6.txt#version')
    monkeypatch.setattr(clip_vocab, "VOCAB_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        clip_vocab.vocab_file()


def test_the_tokenizer_json_is_rebuilt_byte_for_byte(tmp_path: Path, tokenizer_json: Path) -> None:
    again = clip_vocab.write_tokenizer(tmp_path / "tokenizer.json")
    assert again.read_bytes() == tokenizer_json.read_bytes()


def test_long_texts_keep_endoftext_at_position_76(tokenizer) -> None:
    (row,) = clip.encode(tokenizer, [TEXTS[-1]])
    assert row.dtype == np.int32 and row.shape == (77,)
    assert (row[0], row[-1]) == (clip.START_OF_TEXT, clip.END_OF_TEXT)
    assert (row != 0).all() and (row == clip.END_OF_TEXT).sum() == 1


def test_short_texts_are_padded_with_zeros_after_endoftext(tokenizer) -> None:
    empty, cat = clip.encode(tokenizer, ["", "a cat"])
    assert empty[:2].tolist() == [clip.START_OF_TEXT, clip.END_OF_TEXT] and not empty[2:].any()
    assert cat[:4].tolist() == [clip.START_OF_TEXT, 320, 2368, clip.END_OF_TEXT]
    assert not cat[4:].any()
    assert int(cat.argmax()) == 3  # where the text tower pools


def test_a_literal_special_token_in_a_text_is_that_token_as_in_clip(tokenizer) -> None:
    ids = clip.token_ids(tokenizer, ["a <|endoftext|> b"])[0]
    assert ids == [clip.START_OF_TEXT, 320, clip.END_OF_TEXT, 321, clip.END_OF_TEXT]


def test_the_tokenizer_module_imports_neither_torch_nor_transformers_nor_ftfy() -> None:
    assert imported_packages(clip) <= {
        "__future__",
        "collections",
        "html",
        "pathlib",
        "typing",
        "unicodedata",
        "numpy",
        "tokenizers",
    }
