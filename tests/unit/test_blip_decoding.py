"""The caption search (serving/bls/blip_decoding.py) against transformers' own generate(): a fake
language model whose logits are a seeded function of the whole token history drives both, so
every finishing path (end-of-sequence among the candidates, max_new_tokens, the early-stop
heuristic, length penalties) is compared on the same numbers. The fake is written here; it
shares no code with the module it checks."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from serving.bls import blip_decoding as search
from serving.bls.blip_decoding import DecodingOptions, Step

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

VOCAB = 40  # small, so that the end-of-sequence id is often among the best candidates
EOS = 7
PAD = 0
PROMPTS = ([1, 2, 3], [1, 5, 9], [4, 4, 4])


def fake_logits(history: list[int], seed: int) -> np.ndarray:
    """The fake model: logits drawn from a generator keyed on the seed, the length and the last
    three tokens, so every beam sees its own numbers and repeats are reproducible."""
    generator = np.random.default_rng([seed, len(history), *history[-3:]])
    return (generator.standard_normal(VOCAB) * 2.0).astype(np.float32)


class FakeConfig(PretrainedConfig):  # type: ignore[misc,no-untyped-call]
    model_type = "facet_fake_lm"


class FakeLanguageModel(PreTrainedModel, GenerationMixin):  # type: ignore[misc,no-untyped-call]
    config_class = FakeConfig

    def __init__(self, config: FakeConfig, seed: int) -> None:
        super().__init__(config)
        self.seed = seed
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, **_: object) -> CausalLMOutputWithPast:
        logits = torch.zeros(*input_ids.shape, VOCAB)
        rows = [fake_logits(row.tolist(), self.seed) for row in input_ids]
        logits[:, -1] = torch.from_numpy(np.stack(rows))
        return CausalLMOutputWithPast(logits=logits)


def transformers_generate(seed: int, options: DecodingOptions) -> list[list[int]]:
    """generate() on the fake, each row cut after its first end-of-sequence id."""
    model: Any = FakeLanguageModel(FakeConfig(), seed)
    model.eval()
    with torch.no_grad():
        output = model.generate(
            torch.tensor(PROMPTS),
            num_beams=options.num_beams,
            max_new_tokens=options.max_new_tokens,
            eos_token_id=EOS,
            pad_token_id=PAD,
            do_sample=False,
            use_cache=False,
            length_penalty=options.length_penalty,
            early_stopping=options.early_stopping,
        )
    rows = []
    for row in output[:, len(PROMPTS[0]) :].tolist():
        ends = [i for i, token in enumerate(row) if token == EOS]
        rows.append(row[: ends[0] + 1] if ends else row)
    return rows


class FakeDecoder:
    """What caption_blip does around the search: rows carry their history as the past."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rows: list[list[int]] = []
        self.calls: list[int] = []  # rows per call

    def first(self, images: int) -> np.ndarray:
        self.rows = [list(p) for p in PROMPTS[:images]]
        self.calls.append(images)
        return np.stack([fake_logits(r, self.seed) for r in self.rows])

    def step(self, step: Step) -> np.ndarray:
        self.rows = [
            self.rows[int(source)] + [int(token)]
            for source, token in zip(step.source_rows, step.tokens[:, 0], strict=True)
        ]
        self.calls.append(len(self.rows))
        return np.stack([fake_logits(r, self.seed) for r in self.rows])


def ours(seed: int, options: DecodingOptions) -> list[list[int]]:
    decoder = FakeDecoder(seed)
    return search.generate(decoder.first, decoder.step, len(PROMPTS), options)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("beams", [1, 2, 3, 5])
@pytest.mark.parametrize("new_tokens", [1, 4, 9])
def test_the_search_chooses_the_ids_transformers_generate_chooses(seed, beams, new_tokens) -> None:
    options = DecodingOptions(num_beams=beams, max_new_tokens=new_tokens, eos_id=EOS, pad_id=PAD)
    assert ours(seed, options) == transformers_generate(seed, options)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("length_penalty", [0.0, 2.0, -1.0])
@pytest.mark.parametrize("early_stopping", [True, "never"])
def test_length_penalties_and_early_stopping_modes_match_transformers(
    seed, length_penalty, early_stopping
) -> None:
    options = DecodingOptions(
        num_beams=3,
        max_new_tokens=10,
        eos_id=EOS,
        pad_id=PAD,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
    )
    assert ours(seed, options) == transformers_generate(seed, options)


def test_the_fake_exercises_early_ends_and_full_lengths() -> None:
    """The comparisons above are only worth something if captions end in both ways."""
    lengths = set()
    for seed in range(12):
        options = DecodingOptions(num_beams=3, max_new_tokens=9, eos_id=EOS, pad_id=PAD)
        for sequence in ours(seed, options):
            lengths.add((len(sequence), sequence[-1] == EOS))
    assert any(ended for _, ended in lengths) and (9, False) in lengths
    assert len({length for length, _ in lengths}) >= 4


def test_finished_images_leave_the_later_decoder_calls() -> None:
    logits = np.zeros((3, VOCAB), np.float32)
    logits[:, 11] = 5.0
    logits[1, EOS] = 9.0  # the second image ends at once
    greedy = search.Greedy(3, DecodingOptions(1, 5, EOS, PAD))
    step = greedy.start(logits)
    assert step is not None
    assert step.images.tolist() == [0, 2] and step.source_rows.tolist() == [0, 2]
    assert step.tokens.tolist() == [[11], [11]] and step.tokens.dtype == np.int32
    then = np.zeros((2, VOCAB), np.float32)
    then[0, EOS] = 1.0  # the first ends now; the third goes on
    step = greedy.advance(then)
    assert step is not None and step.images.tolist() == [2] and step.source_rows.tolist() == [1]
    assert greedy.sequences()[:2] == [[11, EOS], [EOS]]


def test_beam_rows_start_from_the_one_prompt_row_of_their_image() -> None:
    beams = search.BeamSearch(2, DecodingOptions(3, 4, EOS, PAD))
    step = beams.start(np.random.default_rng(0).standard_normal((2, VOCAB)).astype(np.float32))
    assert step is not None
    assert step.images.tolist() == [0, 0, 0, 1, 1, 1]
    assert step.source_rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(set(step.tokens[:3, 0].tolist())) == 3  # three different first tokens


def test_the_last_step_asks_for_no_further_call() -> None:
    greedy = search.Greedy(2, DecodingOptions(1, 1, EOS, PAD))
    assert greedy.start(np.ones((2, VOCAB), np.float32)) is None
    beams = search.BeamSearch(2, DecodingOptions(2, 1, EOS, PAD))
    assert beams.start(np.arange(2 * VOCAB, dtype=np.float32).reshape(2, VOCAB)) is None
    assert beams.sequences() == [[VOCAB - 1], [VOCAB - 1]]


def test_a_wrong_number_of_rows_is_refused() -> None:
    greedy = search.Greedy(2, DecodingOptions(1, 3, EOS, PAD))
    with pytest.raises(ValueError, match="rows of logits"):
        greedy.start(np.zeros((3, VOCAB), np.float32))


def test_sequences_are_padded_after_their_end() -> None:
    padded = search.pad_sequences([[5, EOS], [3, 4, 6], []], PAD)
    assert padded.dtype == np.int32
    assert padded.tolist() == [[5, EOS, PAD], [3, 4, 6], [PAD, PAD, PAD]]


def test_log_softmax_is_normalised_in_float32() -> None:
    rows = np.array([[1000.0, 0.0, -5.0], [0.1, 0.2, 0.3]], np.float32)
    values = search.log_softmax(rows)
    assert values.dtype == np.float32
    np.testing.assert_allclose(np.exp(values).sum(axis=1), 1.0, atol=1e-6)
    assert values[0, 0] == 0.0


def test_top_k_breaks_ties_by_the_lower_index() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0], np.float32)
    assert search.top_k(scores, 3).tolist() == [1, 2, 4]
    assert search.top_k(scores, 10).tolist() == [1, 2, 4, 3, 0]


def test_options_refuse_an_empty_search() -> None:
    with pytest.raises(ValueError):
        DecodingOptions(num_beams=0, max_new_tokens=4, eos_id=EOS, pad_id=PAD)
    with pytest.raises(ValueError):
        DecodingOptions(num_beams=1, max_new_tokens=0, eos_id=EOS, pad_id=PAD)
