"""What the text-embedding BLS models share (embed_text, embed_clip_text): reading a request's
UTF-8 texts, calling the encoder model through BLS once per chunk of its batch limit, all
chunks at once, and answering with the embeddings in request order or a typed error.

A model's `model.py` subclasses `TextEncoderModel` as its `TritonPythonModel` and says only
what differs: its name, how it loads its tokenizer and how texts become encoder inputs.

Triton's Python backend imports a model's files from that model's own folder only, so
`python -m export` copies this file into each text model's version folder
(`text_encoder_io.py`), next to `text_tokenizer.py`, which it imports; edit it here. It runs
inside the backend's stub process, where `triton_python_backend_utils` exists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import text_tokenizer as text  # next to this file in the model's version folder
import triton_python_backend_utils as pb_utils

EMBEDDING = "embedding"
Array = npt.NDArray[Any]
Vectors = npt.NDArray[np.float32]
# One encoder call: the rows of the request's texts it embeds, and its input tensors by name.
EncoderCall = tuple[Array, dict[str, Array]]


class RequestError(ValueError):
    """The request itself is malformed: answered with INVALID_ARG."""


class EncoderError(RuntimeError):
    """The encoder call failed; keeps Triton's error code."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


class TextEncoderModel:
    """A Triton Python model: text BYTES [N] → embedding FP32 [N, D] from `encoder_model`.

    Its config's parameters: encoder_model, encoder_max_batch, max_texts, max_text_bytes,
    tokenizer_file (in the version folder) and the one `length_parameter` names (the most
    tokens a text becomes). A subclass sets `name` (for messages), `length_parameter` and
    `load_tokenizer`, and turns texts into encoder calls in `encoder_calls`."""

    name = "text_encoder"
    length_parameter = "max_length"
    # (tokenizer.json, the length) → the tokenizer that `encoder_calls` uses as self.tokenizer.
    load_tokenizer: Callable[[Path, int], Any]

    def initialize(self, args: dict[str, str]) -> None:
        self.config: dict[str, Any] = json.loads(args["model_config"])
        self.encoder = self.parameter("encoder_model")
        self.max_batch = int(self.parameter("encoder_max_batch"))
        self.length = int(self.parameter(self.length_parameter))
        self.max_texts = int(self.parameter("max_texts"))
        self.max_bytes = int(self.parameter("max_text_bytes"))
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = self.load_tokenizer(folder / self.parameter("tokenizer_file"), self.length)
        self.size = int(self.config["output"][0]["dims"][-1])

    def encoder_calls(self, texts: list[str]) -> list[EncoderCall]:
        """The (non-empty) texts as encoder calls of at most `max_batch` rows each, every row
        of the request in exactly one call."""
        raise NotImplementedError

    def parameter(self, key: str) -> str:
        """A string parameter of the model's config.pbtxt; a missing one stops the model
        loading."""
        value = self.config.get("parameters", {}).get(key, {}).get("string_value")
        if value is None:
            raise ValueError(f"{self.config.get('name', self.name)}: parameter '{key}' is missing")
        return str(value)

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self._answer(r) for r in requests)))

    def finalize(self) -> None:
        pass

    async def _answer(self, request: Any) -> Any:
        try:
            vectors = await self._embed(self._read_texts(request))
        except (RequestError, text.TextError) as error:
            return _error(str(error), pb_utils.TritonError.INVALID_ARG)
        except EncoderError as error:
            return _error(str(error), error.code)
        except Exception as error:  # a bug must fail the request, not the model instance
            return _error(f"{self.name} failed: {error!r}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(EMBEDDING, vectors)])

    def _read_texts(self, request: Any) -> list[str]:
        tensor = pb_utils.get_input_tensor_by_name(request, "text")
        if tensor is None:
            raise RequestError("input 'text' is missing")
        raw = tensor.as_numpy()
        if raw.size > self.max_texts:
            raise RequestError(f"{raw.size} texts in one request, more than {self.max_texts}")
        texts: list[str] = text.decode_texts(raw, self.max_bytes)
        return texts

    async def _embed(self, texts: list[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.size), dtype=np.float32)
        if not texts:
            return vectors
        calls = self.encoder_calls(texts)
        results = await asyncio.gather(*(self._encode(inputs) for _, inputs in calls))
        for (rows, _), result in zip(calls, results, strict=True):
            vectors[rows] = result
        return vectors

    async def _encode(self, inputs: dict[str, Array]) -> Vectors:
        request = pb_utils.InferenceRequest(
            model_name=self.encoder,
            requested_output_names=[EMBEDDING],
            inputs=[pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in inputs.items()],
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            raise EncoderError(f"{self.encoder}: {error.message()}", error.code())
        output: Vectors = pb_utils.get_output_tensor_by_name(response, EMBEDDING).as_numpy()
        rows = len(next(iter(inputs.values())))
        if output.shape[0] != rows:
            raise EncoderError(
                f"{self.encoder}: {output.shape[0]} embeddings for {rows} texts",
                pb_utils.TritonError.INTERNAL,
            )
        return output


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
