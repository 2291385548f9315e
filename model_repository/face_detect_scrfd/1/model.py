"""face_detect_scrfd: SCRFD face detection as one Triton model (Python backend, BLS).

The image is letterboxed to a square (ratio kept, zero padding bottom/right), the network
`scrfd_10g` is called through BLS, and its 9 outputs are decoded in `scrfd_decode.py` next to
this file (anchor centres, distances × stride, score threshold, NMS, back to original pixels).

Inputs:  image UINT8 [H, W, 3] RGB; optional score_threshold FP32 [1] (in [0, 1]).
Outputs: boxes FP32 [K, 4] (x1, y1, x2, y2), scores FP32 [K] (descending), landmarks FP32
         [K, 5, 2] (x, y). A malformed request gets INVALID_ARG; a failing call fails only it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scrfd_decode as decode  # found through the line above

INPUT = "input.1"
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in decode.STRIDES)


class RequestError(ValueError):
    """The request itself is malformed: answered with INVALID_ARG."""


class NetError(RuntimeError):
    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


def _parameter(config: dict[str, Any], key: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    if value is None:
        raise ValueError(f"face_detect_scrfd: parameter '{key}' is missing from config.pbtxt")
    return str(value)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._net = _parameter(config, "net_model")
        self._size = int(_parameter(config, "input_size"))
        self._score = float(_parameter(config, "score_threshold"))
        self._nms = float(_parameter(config, "nms_threshold"))
        self._max_side = int(_parameter(config, "max_image_side"))

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self._answer(r) for r in requests)))

    def finalize(self) -> None:
        pass

    async def _answer(self, request: Any) -> Any:
        try:
            image, threshold = self._read(request)
            batch, scale = decode.letterbox(image, self._size)
            outputs = await self._infer(batch)
            found = decode.decode(outputs, self._size, scale, threshold, self._nms)
        except RequestError as error:
            return _error(str(error), pb_utils.TritonError.INVALID_ARG)
        except NetError as error:
            return _error(str(error), error.code)
        except Exception as error:  # a bug must fail the request, not the model instance
            return _error(f"face_detect_scrfd failed: {error!r}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("boxes", found.boxes),
                pb_utils.Tensor("scores", found.scores),
                pb_utils.Tensor("landmarks", found.landmarks),
            ]
        )

    def _read(self, request: Any) -> tuple[np.ndarray, float]:
        tensor = pb_utils.get_input_tensor_by_name(request, "image")
        if tensor is None:
            raise RequestError("input 'image' is missing")
        image = tensor.as_numpy()
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise RequestError(f"'image' must be UINT8 [H, W, 3] RGB, got {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise RequestError(f"'image' is empty: {image.shape}")
        if max(image.shape[:2]) > self._max_side:
            raise RequestError(f"'image' {image.shape} exceeds {self._max_side} px a side")
        threshold = self._score
        given = pb_utils.get_input_tensor_by_name(request, "score_threshold")
        if given is not None:
            values = given.as_numpy().reshape(-1)
            if values.size != 1 or not math.isfinite(float(values[0])):
                raise RequestError("input 'score_threshold' must hold one finite number")
            threshold = float(values[0])
            if not 0.0 <= threshold <= 1.0:
                raise RequestError(f"score_threshold must be in [0, 1], got {threshold:g}")
        return np.ascontiguousarray(image), threshold

    async def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=self._net,
            requested_output_names=list(OUTPUTS),
            inputs=[pb_utils.Tensor(INPUT, batch)],
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            raise NetError(f"{self._net}: {error.message()}", error.code())
        return [pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in OUTPUTS]


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
