"""caption_blip: BLIP base image captions as one Triton model (Python backend, BLS), with the
decoding loop inside Triton.

The images go through `blip_vision` in one call (chunked by its batch limit), the prompt
"a picture of " through `blip_decoder_first` once per image, and then every step of greedy or
beam search sends all of the request's running rows (images × beams) to `blip_decoder_step`
in one call, chunked by the decoder's batch limit: `blip_decoding.py` chooses the tokens as
transformers' generate() does, `blip_text.py` turns the ids into captions with the
tokenizer.json that `python -m export` installs next to this file. Both modules, and
`detector_io.py` (parameters, request scalars, error answers), are copied from serving/bls/.

Inputs:  image UINT8 [N, 384, 384, 3] RGB (resized to 384², not cropped; N ≤ max_images);
         optional num_beams INT32 [1] (1 = greedy, ≤ max_num_beams) and max_new_tokens INT32
         [1] (≤ max_new_tokens_limit); their defaults are this model's parameters.
Outputs: caption BYTES [N] (UTF-8, the prompt cut off) and token_ids INT32 [N, T] (the
         generated ids, [SEP] last when a caption ended there, padded with [PAD] 0).
A malformed request gets INVALID_ARG; a failing model call fails only its request, with that
model's own error code (e.g. UNAVAILABLE when its queue is full).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The Rust tokenizer would start a thread pool per process; one prompt and a few captions are
# nothing, and the two cores belong to the decoders.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import blip_decoding as decoding  # found through the line above; installed by `python -m export`
import blip_text as text
import detector_io as bls

Array = npt.NDArray[Any]
IMAGE = "image"
IMAGE_EMBEDS = "image_embeds"
DECODER_OUTPUTS = ("logits", "present_keys", "present_values")
MODEL = "caption_blip"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        self._vision = bls.parameter(config, "vision_model")
        self._vision_batch = int(bls.parameter(config, "vision_max_batch"))
        self._first = bls.parameter(config, "decoder_first_model")
        self._step = bls.parameter(config, "decoder_step_model")
        self._decoder_batch = int(bls.parameter(config, "decoder_max_batch"))
        self._max_images = int(bls.parameter(config, "max_images"))
        self._default_beams = int(bls.parameter(config, "default_num_beams"))
        self._max_beams = int(bls.parameter(config, "max_num_beams"))
        self._default_tokens = int(bls.parameter(config, "default_max_new_tokens"))
        self._max_tokens = int(bls.parameter(config, "max_new_tokens_limit"))
        self._length_penalty = float(bls.parameter(config, "length_penalty"))
        self._early_stopping = _early_stopping(bls.parameter(config, "early_stopping"))
        self._eos = int(bls.parameter(config, "eos_id"))
        self._pad = int(bls.parameter(config, "pad_id"))
        self._prompt_text = bls.parameter(config, "prompt")
        self._tokenizer = text.load_tokenizer(folder / bls.parameter(config, "tokenizer_file"))
        bos = int(bls.parameter(config, "bos_id"))
        self._prompt = text.prompt_ids(self._tokenizer, self._prompt_text, bos)
        self._image_shape = tuple(int(d) for d in config["input"][0]["dims"][1:])

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(*(bls.answer_tensors(MODEL, self._caption, r) for r in requests))
        )

    def finalize(self) -> None:
        pass

    async def _caption(self, request: Any) -> dict[str, Array]:
        images = self._read_images(request)
        options = decoding.DecodingOptions(
            num_beams=self._read_count(request, "num_beams", self._default_beams, self._max_beams),
            max_new_tokens=self._read_count(
                request, "max_new_tokens", self._default_tokens, self._max_tokens
            ),
            eos_id=self._eos,
            pad_id=self._pad,
            length_penalty=self._length_penalty,
            early_stopping=self._early_stopping,
        )
        sequences = await self._generate(images, options) if len(images) else []
        captions = [
            text.caption(self._tokenizer, self._prompt_text, self._prompt, ids).encode("utf-8")
            for ids in sequences
        ]
        return {
            "caption": np.array(captions, dtype=np.object_),
            "token_ids": decoding.pad_sequences(sequences, self._pad)
            if sequences
            else np.zeros((0, 0), dtype=np.int32),
        }

    def _read_images(self, request: Any) -> Array:
        tensor = pb_utils.get_input_tensor_by_name(request, IMAGE)
        if tensor is None:
            raise bls.RequestError(f"input '{IMAGE}' is missing")
        images = tensor.as_numpy()
        if images.dtype != np.uint8 or tuple(images.shape[1:]) != self._image_shape:
            raise bls.RequestError(
                f"'{IMAGE}' must be UINT8 [N, {', '.join(map(str, self._image_shape))}], "
                f"got {images.dtype} {list(images.shape)}"
            )
        if len(images) > self._max_images:
            raise bls.RequestError(
                f"{len(images)} images in one request, more than {self._max_images}"
            )
        return np.ascontiguousarray(images)

    def _read_count(self, request: Any, name: str, default: int, limit: int) -> int:
        value = bls.read_scalar(request, name)
        if value is None:
            return default
        if value != int(value) or not 1 <= value <= limit:
            raise bls.RequestError(f"{name} must be a whole number in 1..{limit}, got {value:g}")
        return int(value)

    async def _generate(self, images: Array, options: decoding.DecodingOptions) -> list[list[int]]:
        """The decoding loop: the prompt once per image, then one decoder call per step for all
        running rows (each call chunked by the decoder's batch limit)."""
        (embeds,) = await self._call(
            self._vision, {IMAGE: images}, (IMAGE_EMBEDS,), self._vision_batch
        )
        search = decoding.new_search(len(images), options)
        prompt = np.tile(np.asarray(self._prompt, dtype=np.int32), (len(images), 1))
        logits, keys, values = await self._call(
            self._first, {"input_ids": prompt, IMAGE_EMBEDS: embeds}, DECODER_OUTPUTS
        )
        step = search.start(logits)
        while step is not None:
            inputs = {
                "input_ids": step.tokens,
                "past_keys": np.take(keys, step.source_rows, axis=0),
                "past_values": np.take(values, step.source_rows, axis=0),
                IMAGE_EMBEDS: np.take(embeds, step.images, axis=0),
            }
            logits, keys, values = await self._call(self._step, inputs, DECODER_OUTPUTS)
            step = search.advance(logits)
        return search.sequences()

    async def _call(
        self,
        model: str,
        inputs: dict[str, Array],
        outputs: tuple[str, ...],
        limit: int | None = None,
    ) -> list[Array]:
        """`model` on every row of `inputs`, in chunks of at most `limit` rows (default: the
        decoders' limit) sent together; the outputs joined back in row order."""
        rows = len(next(iter(inputs.values())))
        size = limit or self._decoder_batch
        chunks = [slice(start, min(start + size, rows)) for start in range(0, rows, size)]
        answers = await asyncio.gather(
            *(self._call_once(model, {n: a[c] for n, a in inputs.items()}, outputs) for c in chunks)
        )
        if len(answers) == 1:
            return answers[0]
        return [np.concatenate([answer[i] for answer in answers]) for i in range(len(outputs))]

    async def _call_once(
        self, model: str, inputs: dict[str, Array], outputs: tuple[str, ...]
    ) -> list[Array]:
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=list(outputs),
            inputs=[pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in inputs.items()],
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            raise bls.NetError(f"{model}: {error.message()}", error.code())
        return [pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in outputs]


def _early_stopping(value: str) -> decoding.EarlyStopping:
    """The config's early_stopping: "false", "true" or "never", as transformers takes it."""
    choices: dict[str, decoding.EarlyStopping] = {"false": False, "true": True, "never": "never"}
    if value.lower() not in choices:
        raise ValueError(f"{MODEL}: early_stopping must be one of {sorted(choices)}, got {value}")
    return choices[value.lower()]
