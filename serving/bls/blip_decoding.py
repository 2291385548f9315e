"""Greedy and beam-search decoding over a caption decoder's logits, in numpy alone: the token
choices transformers' `generate()` makes (5.23, `_sample` without sampling and `_beam_search`),
so a loop that runs inside Triton gives the ids generate() gives on the same weights.

The caller owns the model calls. It runs the prompt once per image, hands the last-position
logits to `start`, and then, while a `Step` comes back, runs that step's rows through the
decoder (their `tokens`, the past of the previous call's rows `source_rows`, the image of each
row `images`) and hands the logits to `advance`. Rows of images that are finished are left out
of later calls; their result can no longer change.

What generate() does, and what is copied here:
- Greedy (num_beams 1): the arg-max of the raw logits (first index on ties, as torch.argmax);
  an image stops at the end-of-sequence id or after `max_new_tokens`.
- Beam search: each step keeps the 2·K best (beam, token) continuations by accumulated log
  probability (log-softmax in float32, as torch computes it); those ending in EOS among the top
  K become finished hypotheses scored sum / generated_length ** length_penalty (the EOS counted
  in the length); the K best that do not end become the running beams. At the last step
  (max_new_tokens) every continuation ends. An image is done when no running beam can still
  beat its worst finished one (transformers' early-stop heuristic: with early_stopping False the
  best running score divided by the current length; "never" with a positive penalty divides by
  the longest possible length; True stops once K hypotheses are finished). The answer is the
  best finished hypothesis.
- The first step has one row per image: generate() runs K identical copies of the prompt and
  masks all but the first at -1e9, so every candidate comes from that one row anyway.

transformers' BLIP generation defaults, which the caption model serves: length_penalty 1.0,
early_stopping False, no sampling, no repetition penalty, no minimum length, EOS = [SEP] 102,
finished rows padded with [PAD] 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
EarlyStopping = bool | Literal["never"]
# transformers' stand-in for "impossible" in beam scores: a masked score is pushed this far down.
MASKED = np.float32(-1.0e9)


@dataclass(frozen=True)
class DecodingOptions:
    num_beams: int
    max_new_tokens: int
    eos_id: int
    pad_id: int
    length_penalty: float = 1.0
    early_stopping: EarlyStopping = False

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.max_new_tokens < 1:
            raise ValueError(f"num_beams and max_new_tokens must be ≥ 1: {self}")


@dataclass(frozen=True)
class Step:
    """The rows of the next decoder call: one token each, the row of the previous call whose
    past it continues, and the image it belongs to."""

    tokens: Array  # INT32 [R, 1]
    source_rows: Array  # INT64 [R]
    images: Array  # INT64 [R]


def log_softmax(logits: Array) -> Array:
    """Row-wise log-softmax in float32, computed as torch does (x − max − log Σ exp(x − max))."""
    values = np.asarray(logits, dtype=np.float32)
    shifted = values - values.max(axis=-1, keepdims=True)
    total = np.log(np.exp(shifted).sum(axis=-1, keepdims=True, dtype=np.float32))
    return np.asarray(shifted - total, dtype=np.float32)


def top_k(scores: Array, k: int) -> Array:
    """Indices of the `k` largest scores, largest first (lowest index first among equals)."""
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    order = np.lexsort((part, -scores[part]))
    return np.asarray(part[order], dtype=np.int64)


class Greedy:
    """num_beams 1: the most likely token at every step."""

    def __init__(self, images: int, options: DecodingOptions) -> None:
        self._options = options
        self._tokens: list[list[int]] = [[] for _ in range(images)]
        self._running = np.arange(images, dtype=np.int64)  # images of the last call's rows

    def start(self, logits: Array) -> Step | None:
        return self.advance(logits)

    def advance(self, logits: Array) -> Step | None:
        """The last call's logits [rows, V] (rows = the images still running, in order)."""
        if len(logits) != len(self._running):
            raise ValueError(f"{len(logits)} rows of logits for {len(self._running)} images")
        chosen = np.argmax(np.asarray(logits, dtype=np.float32), axis=-1)
        keep: list[int] = []
        for row, (image, token) in enumerate(zip(self._running, chosen, strict=True)):
            generated = self._tokens[int(image)]
            generated.append(int(token))
            ended = int(token) == self._options.eos_id
            if not ended and len(generated) < self._options.max_new_tokens:
                keep.append(row)
        rows = np.asarray(keep, dtype=np.int64)
        self._running = self._running[rows]
        if not len(rows):
            return None
        tokens = chosen[rows].astype(np.int32).reshape(-1, 1)
        return Step(tokens=tokens, source_rows=rows, images=self._running.copy())

    def sequences(self) -> list[list[int]]:
        """Each image's generated ids, ending with EOS when it stopped there."""
        return [list(tokens) for tokens in self._tokens]


@dataclass
class _Hypotheses:
    """One image's beam state."""

    running: list[list[int]]  # K token lists
    running_scores: Array  # float32 [K]
    finished: list[tuple[float, list[int]]] = field(default_factory=list)  # best first, ≤ K
    improvable: bool = True  # transformers' is_early_stop_heuristic_unsatisfied

    def is_full(self, beams: int) -> bool:
        return len(self.finished) >= beams


class BeamSearch:
    """num_beams K > 1, as transformers' vectorised beam search."""

    def __init__(self, images: int, options: DecodingOptions) -> None:
        self._options = options
        self._beams = options.num_beams
        self._state: list[_Hypotheses | None] = [None] * images
        self._rows: list[tuple[int, int]] = []  # (image, beam) of the last call's rows
        self._generated = 0  # tokens generated so far (the same for every running beam)

    def start(self, logits: Array) -> Step | None:
        """The prompt's last-position logits, one row per image."""
        if len(logits) != len(self._state):
            raise ValueError(f"{len(logits)} rows of logits for {len(self._state)} images")
        self._rows = [(image, 0) for image in range(len(self._state))]
        return self._step(log_softmax(logits))

    def advance(self, logits: Array) -> Step | None:
        """The last call's logits [rows, V], rows as the previous Step listed them."""
        if len(logits) != len(self._rows):
            raise ValueError(f"{len(logits)} rows of logits for {len(self._rows)} rows")
        return self._step(log_softmax(logits))

    def _step(self, scores: Array) -> Step | None:
        """One step for every image in the last call's rows: `scores` are their log-probs."""
        beams, vocab = self._beams, scores.shape[-1]
        last = self._generated + 1 >= self._options.max_new_tokens
        next_rows: list[tuple[int, int]] = []
        sources: list[int] = []
        for image in self._images_in_rows():
            rows = [r for r, (i, _) in enumerate(self._rows) if i == image]
            state = self._state[image] or _Hypotheses(
                running=[[]], running_scores=np.zeros(1, dtype=np.float32)
            )
            accumulated = (scores[rows] + state.running_scores[:, None]).astype(np.float32)
            flat = accumulated.reshape(-1)
            best = top_k(flat, 2 * beams)
            cand_beam, cand_token, cand_score = best // vocab, best % vocab, flat[best]
            ends = (cand_token == self._options.eos_id) | last
            self._add_finished(state, cand_beam, cand_token, cand_score, ends)
            masked = (cand_score + ends.astype(np.float32) * MASKED).astype(np.float32)
            keep = top_k(masked, beams)
            state.running = [state.running[cand_beam[k]] + [int(cand_token[k])] for k in keep]
            state.running_scores = masked[keep]
            state.improvable = self._still_improvable(state)
            self._state[image] = state
            if last or not self._is_open(state):
                continue
            for beam, k in enumerate(keep):
                next_rows.append((image, beam))
                sources.append(rows[int(cand_beam[k])])
        self._generated += 1
        self._rows = next_rows
        if not next_rows:
            return None
        tokens = [self._state[i].running[b][-1] for i, b in next_rows]  # type: ignore[union-attr]
        return Step(
            tokens=np.asarray(tokens, dtype=np.int32).reshape(-1, 1),
            source_rows=np.asarray(sources, dtype=np.int64),
            images=np.asarray([image for image, _ in next_rows], dtype=np.int64),
        )

    def _images_in_rows(self) -> list[int]:
        return list(dict.fromkeys(image for image, _ in self._rows))

    def _add_finished(
        self,
        state: _Hypotheses,
        cand_beam: Array,
        cand_token: Array,
        cand_score: Array,
        ends: Array,
    ) -> None:
        """Candidates among the top K that end become hypotheses, unless nothing can improve
        any more; the K best hypotheses are kept."""
        options, beams = self._options, self._beams
        if not state.improvable or (options.early_stopping is True and state.is_full(beams)):
            return
        length = np.float32((self._generated + 1) ** options.length_penalty)
        entries = list(state.finished)
        for k in range(min(beams, len(cand_score))):
            if ends[k]:
                score = float(np.float32(cand_score[k]) / length)
                entries.append((score, state.running[cand_beam[k]] + [int(cand_token[k])]))
        # Stable: an older hypothesis stays ahead of a new one of equal score, as in the merge
        # (old first, then the new in score order) that transformers' top-k reads.
        entries.sort(key=lambda entry: -entry[0])
        state.finished = entries[:beams]

    def _still_improvable(self, state: _Hypotheses) -> bool:
        """transformers' _check_early_stop_heuristic after the step (lengths count the token
        just added): can the best running beam still beat the worst finished hypothesis?"""
        options = self._options
        if options.early_stopping == "never" and options.length_penalty > 0.0:
            length = options.max_new_tokens
        else:
            length = self._generated + 1
        best = np.float32(state.running_scores[0]) / np.float32(length**options.length_penalty)
        full = state.is_full(self._beams)
        worst = np.float32(min(s for s, _ in state.finished)) if full else MASKED
        return state.improvable and bool(best > worst)

    def _is_open(self, state: _Hypotheses) -> bool:
        if self._options.early_stopping is True and state.is_full(self._beams):
            return False
        return state.improvable

    def sequences(self) -> list[list[int]]:
        """Each image's best finished hypothesis: its generated ids, EOS included if it ended
        there."""
        results = []
        for image, state in enumerate(self._state):
            if state is None or not state.finished:
                raise RuntimeError(f"image {image} has no finished hypothesis yet")
            results.append(list(state.finished[0][1]))
        return results


Search = Greedy | BeamSearch


def new_search(images: int, options: DecodingOptions) -> Search:
    """Greedy for one beam (as generate() does), beam search otherwise."""
    if options.num_beams == 1:
        return Greedy(images, options)
    return BeamSearch(images, options)


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> Array:
    """INT32 [N, T] with each sequence left-aligned and `pad_id` after it (T ≥ 1)."""
    width = max([len(s) for s in sequences] + [1])
    padded = np.full((len(sequences), width), pad_id, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


def generate(
    first: Callable[[int], Array],
    step: Callable[[Step], Array],
    images: int,
    options: DecodingOptions,
) -> list[list[int]]:
    """The whole loop for callers that can block: `first(images)` gives the prompt's logits
    (one row per image), `step(Step)` the logits of a step's rows (and keeps its own past)."""
    search = new_search(images, options)
    pending = search.start(first(images))
    while pending is not None:
        pending = search.advance(step(pending))
    return search.sequences()
