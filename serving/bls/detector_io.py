"""What the detector BLS models share: reading a request, calling a network through BLS, and
answering with faces (or, for other detectors, any named output tensors) or a typed error.

Triton's Python backend imports a model's files from that model's own folder only, so
`python -m export` copies this file into each detector's version folder (`detector_io.py`);
edit it here. It runs inside the backend's stub process, where `triton_python_backend_utils`
exists.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

Array = npt.NDArray[Any]


class RequestError(ValueError):
    """The request itself is malformed: answered with INVALID_ARG."""


class NetError(RuntimeError):
    """A network call failed; keeps Triton's error code (e.g. UNAVAILABLE for a full queue)."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


class Faces(Protocol):
    boxes: Array  # FP32 [K, 4]
    scores: Array  # FP32 [K]
    landmarks: Array  # FP32 [K, 5, 2]


def parameter(config: dict[str, Any], key: str) -> str:
    """A string parameter of the model's config.pbtxt; a missing one stops the model loading."""
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    if value is None:
        raise ValueError(f"{config.get('name', 'model')}: parameter '{key}' is missing")
    return str(value)


def read_image(request: Any, max_side: int) -> Array:
    """The request's `image` input, checked to be a non-empty UINT8 [H, W, 3] within bounds."""
    tensor = pb_utils.get_input_tensor_by_name(request, "image")
    if tensor is None:
        raise RequestError("input 'image' is missing")
    image = tensor.as_numpy()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RequestError(f"'image' must be UINT8 [H, W, 3] RGB, got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise RequestError(f"'image' is empty: {image.shape}")
    if max(image.shape[:2]) > max_side:
        raise RequestError(f"'image' {image.shape} exceeds {max_side} px a side")
    return np.ascontiguousarray(image)


def read_scalar(request: Any, name: str) -> float | None:
    """An optional one-number input; None when the request leaves it out."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1 or not math.isfinite(float(values[0])):
        raise RequestError(f"input '{name}' must hold one finite number")
    return float(values[0])


def read_score_threshold(request: Any) -> float | None:
    """The optional `score_threshold` input, which must lie in [0, 1]."""
    threshold = read_scalar(request, "score_threshold")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise RequestError(f"score_threshold must be in [0, 1], got {threshold:g}")
    return threshold


async def call_net(
    model: str, input_name: str, batch: Array, outputs: Sequence[str]
) -> list[Array]:
    """Run one batch through `model` with BLS; Triton batches it with other callers' batches."""
    request = pb_utils.InferenceRequest(
        model_name=model,
        requested_output_names=list(outputs),
        inputs=[pb_utils.Tensor(input_name, batch)],
    )
    response = await request.async_exec()
    if response.has_error():
        error = response.error()
        raise NetError(f"{model}: {error.message()}", error.code())
    return [pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs]


async def answer(model: str, detect: Callable[[Any], Awaitable[Faces]], request: Any) -> Any:
    """Run `detect` on one request: its faces, or an error that fails this request only."""

    async def faces(request: Any) -> dict[str, Array]:
        found = await detect(request)
        return {"boxes": found.boxes, "scores": found.scores, "landmarks": found.landmarks}

    return await answer_tensors(model, faces, request)


async def answer_tensors(
    model: str, compute: Callable[[Any], Awaitable[dict[str, Array]]], request: Any
) -> Any:
    """Run `compute` on one request: its output tensors by name, or an error that fails this
    request only."""
    try:
        outputs = await compute(request)
    except RequestError as error:
        return _error(str(error), pb_utils.TritonError.INVALID_ARG)
    except NetError as error:
        return _error(str(error), error.code)
    except Exception as error:  # a bug must fail the request, not the model instance
        return _error(f"{model} failed: {error!r}", pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(
        output_tensors=[pb_utils.Tensor(name, value) for name, value in outputs.items()]
    )


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
