"""embed_clip_text: UTF-8 texts → CLIP ViT-B/32 text embeddings (Python backend, BLS).

Tokenisation runs here, inside Triton, with the tokenizer.json that `python -m export` builds
from CLIP's own BPE vocabulary and installs next to this file, and `clip_tokenizer.py` /
`text_tokenizer.py`, copied from serving/bls/. Every text becomes one row of 77 ids, so a
request's texts are cut into chunks of the encoder's batch limit, sent to
`clip_vit_b32_textual` together and joined in request order.

Input:  text BYTES [N] (UTF-8; N ≤ max_texts, each ≤ max_text_bytes).
Output: embedding FP32 [N, 512], L2-normalised (its dot product with a clip_vit_b32_visual
        embedding is their cosine).
A malformed request gets INVALID_ARG; a failing encoder call fails only its request, with the
encoder's own error code (e.g. UNAVAILABLE when its queue is full).
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
# The Rust tokenizer would start a thread pool per process; texts are short and the two cores
# belong to the encoder.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import clip_tokenizer as clip  # found through the line above; installed by `python -m export`
import text_tokenizer as text

EMBEDDING = "embedding"
INPUT_IDS = "input_ids"
Vectors = npt.NDArray[np.float32]


class RequestError(ValueError):
    """The request itself is malformed: answered with INVALID_ARG."""


class EncoderError(RuntimeError):
    """The encoder call failed; keeps Triton's error code."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


def _parameter(config: dict[str, Any], key: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    if value is None:
        raise ValueError(f"{config.get('name', 'embed_clip_text')}: parameter '{key}' is missing")
    return str(value)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        self._encoder = _parameter(config, "encoder_model")
        self._max_batch = int(_parameter(config, "encoder_max_batch"))
        self._length = int(_parameter(config, "context_length"))
        self._max_texts = int(_parameter(config, "max_texts"))
        self._max_bytes = int(_parameter(config, "max_text_bytes"))
        self._tokenizer = clip.load_tokenizer(
            folder / _parameter(config, "tokenizer_file"), self._length
        )
        self._size = int(config["output"][0]["dims"][-1])

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
            return _error(f"embed_clip_text failed: {error!r}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(EMBEDDING, vectors)])

    def _read_texts(self, request: Any) -> list[str]:
        tensor = pb_utils.get_input_tensor_by_name(request, "text")
        if tensor is None:
            raise RequestError("input 'text' is missing")
        raw = tensor.as_numpy()
        if raw.size > self._max_texts:
            raise RequestError(f"{raw.size} texts in one request, more than {self._max_texts}")
        texts: list[str] = text.decode_texts(raw, self._max_bytes)
        return texts

    async def _embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._size), dtype=np.float32)
        ids = clip.encode(self._tokenizer, texts, self._length)
        chunks = [
            ids[start : start + self._max_batch] for start in range(0, len(ids), self._max_batch)
        ]
        results = await asyncio.gather(*(self._encode(chunk) for chunk in chunks))
        return np.concatenate(results).astype(np.float32, copy=False)

    async def _encode(self, ids: npt.NDArray[np.int32]) -> Vectors:
        request = pb_utils.InferenceRequest(
            model_name=self._encoder,
            requested_output_names=[EMBEDDING],
            inputs=[pb_utils.Tensor(INPUT_IDS, np.ascontiguousarray(ids))],
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            raise EncoderError(f"{self._encoder}: {error.message()}", error.code())
        output: Vectors = pb_utils.get_output_tensor_by_name(response, EMBEDDING).as_numpy()
        if output.shape[0] != ids.shape[0]:
            raise EncoderError(
                f"{self._encoder}: {output.shape[0]} embeddings for {ids.shape[0]} texts",
                pb_utils.TritonError.INTERNAL,
            )
        return output


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
