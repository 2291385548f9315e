"""face_detect_mtcnn: the whole MTCNN face detector as one Triton model (Python backend, BLS).

The numpy steps live in `mtcnn_cascade.py` next to this file; the three networks are the
separate models mtcnn_pnet, mtcnn_rnet and mtcnn_onet, called through BLS so Triton batches
them (same-sized pyramid levels and crop batches of concurrent images). Every pyramid level,
and every chunk of crops, is sent at once and awaited together.

Inputs:  image UINT8 [H, W, 3] RGB; optional min_face_size FP32 [1] (pixels, ≥ 12) and
         score_threshold FP32 [1] (the final O-Net threshold, in [0, 1]).
Outputs: boxes FP32 [K, 4] (x1, y1, x2, y2, original pixels), scores FP32 [K] (descending),
         landmarks FP32 [K, 5, 2] (x, y): left eye, right eye, nose, mouth left, mouth right,
         "left" meaning image-left.
A malformed request gets an INVALID_ARG error; a failing network call fails only its request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mtcnn_cascade as cascade  # found through the line above

MIN_FACE_FLOOR = float(cascade.CELL)  # below P-Net's cell the pyramid would have to enlarge


class RequestError(ValueError):
    """The request itself is malformed: answered with INVALID_ARG."""


class NetError(RuntimeError):
    """A network call failed; keeps Triton's error code (e.g. UNAVAILABLE for a full queue)."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


def _parameter(config: dict[str, Any], key: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    if value is None:
        raise ValueError(f"face_detect_mtcnn: parameter '{key}' is missing from config.pbtxt")
    return str(value)


def _scalar(request: Any, name: str) -> float | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1 or not math.isfinite(float(values[0])):
        raise RequestError(f"input '{name}' must hold one finite number")
    return float(values[0])


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._settings = cascade.Settings(
            min_face_size=float(_parameter(config, "min_face_size")),
            scale_factor=float(_parameter(config, "scale_factor")),
            pnet_threshold=float(_parameter(config, "pnet_threshold")),
            rnet_threshold=float(_parameter(config, "rnet_threshold")),
            onet_threshold=float(_parameter(config, "onet_threshold")),
            rnet_batch=int(_parameter(config, "rnet_max_batch")),
            onet_batch=int(_parameter(config, "onet_max_batch")),
        )
        self._models = {
            "pnet": _parameter(config, "pnet_model"),
            "rnet": _parameter(config, "rnet_model"),
            "onet": _parameter(config, "onet_model"),
        }
        self._max_side = int(_parameter(config, "max_image_side"))

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self._answer(r) for r in requests)))

    def finalize(self) -> None:
        pass

    async def _answer(self, request: Any) -> Any:
        try:
            image, settings = self._read(request)
            found = await self._drive(cascade.detect(image, settings))
        except RequestError as error:
            return _error(str(error), pb_utils.TritonError.INVALID_ARG)
        except NetError as error:
            return _error(str(error), error.code)
        except Exception as error:  # a bug must fail the request, not the model instance
            return _error(f"face_detect_mtcnn failed: {error!r}", pb_utils.TritonError.INTERNAL)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("boxes", found.boxes),
                pb_utils.Tensor("scores", found.scores),
                pb_utils.Tensor("landmarks", found.landmarks),
            ]
        )

    def _read(self, request: Any) -> tuple[np.ndarray, cascade.Settings]:
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
        settings = self._settings
        min_face = _scalar(request, "min_face_size")
        if min_face is not None:
            if min_face < MIN_FACE_FLOOR:
                raise RequestError(f"min_face_size must be ≥ {MIN_FACE_FLOOR:g}, got {min_face:g}")
            settings = dataclasses.replace(settings, min_face_size=min_face)
        threshold = _scalar(request, "score_threshold")
        if threshold is not None:
            if not 0.0 <= threshold <= 1.0:
                raise RequestError(f"score_threshold must be in [0, 1], got {threshold:g}")
            settings = dataclasses.replace(settings, onet_threshold=threshold)
        return np.ascontiguousarray(image), settings

    async def _drive(self, steps: cascade.Cascade) -> cascade.Detections:
        try:
            call = next(steps)
            while True:
                outputs = await asyncio.gather(*(self._infer(call.net, x) for x in call.inputs))
                call = steps.send(outputs)
        except StopIteration as finished:
            result: cascade.Detections = finished.value
            return result

    async def _infer(self, net: str, batch: np.ndarray) -> list[np.ndarray]:
        io = cascade.NETS[net]
        request = pb_utils.InferenceRequest(
            model_name=self._models[net],
            requested_output_names=list(io.outputs),
            inputs=[pb_utils.Tensor(io.input, batch)],
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            raise NetError(f"{self._models[net]}: {error.message()}", error.code())
        return [
            pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in io.outputs
        ]


def _error(message: str, code: Any) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
