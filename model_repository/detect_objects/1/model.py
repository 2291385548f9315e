"""detect_objects: COCO-80 object detection as one Triton model (Python backend, BLS).

The image is resized to the network's square input (ratio not kept, as the TF.js original is
fed), `nanodet_coco` is called through BLS, and its six outputs are decoded in
`nanodet_decode.py` next to this file (bin distributions → box sides, per-class NMS, back to
image pixels); request reading and the BLS call are `detector_io.py`'s, shared with the face
detectors. Class names come from this model's `label_names` parameter, so a client reads them
from Triton.

Inputs:  image UINT8 [H, W, 3] RGB; optional score_threshold FP32 [1] (in [0, 1]) and
         max_detections INT32 [1] (1..1000).
Outputs: boxes FP32 [K, 4] (x1, y1, x2, y2), scores FP32 [K] (descending), labels INT32 [K]
         (index into label_names), label_names BYTES [K]. A malformed request gets
         INVALID_ARG; a failing call fails only it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import detector_io as bls  # found through the line above; installed by `python -m export`
import nanodet_decode as decode

INPUT = "image"
MAX_DETECTIONS_LIMIT = 1000


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._net = bls.parameter(config, "net_model")
        self._size = int(bls.parameter(config, "input_size"))
        self._strides = [int(s) for s in bls.parameter(config, "strides").split(",")]
        self._reg_max = int(bls.parameter(config, "reg_max"))
        self._score = float(bls.parameter(config, "score_threshold"))
        self._nms = float(bls.parameter(config, "nms_threshold"))
        self._max_detections = int(bls.parameter(config, "max_detections"))
        self._max_side = int(bls.parameter(config, "max_image_side"))
        names = json.loads(bls.parameter(config, "label_names"))
        self._names = np.array([str(n).encode() for n in names], dtype=np.object_)
        self._outputs = [f"scores_{s}" for s in self._strides]
        self._outputs += [f"box_bins_{s}" for s in self._strides]

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(
                *(bls.answer_tensors("detect_objects", self._detect, r) for r in requests)
            )
        )

    def finalize(self) -> None:
        pass

    def _limit(self, request: Any) -> int:
        value = bls.read_scalar(request, "max_detections")
        if value is None:
            return self._max_detections
        if value != int(value) or not 1 <= value <= MAX_DETECTIONS_LIMIT:
            raise bls.RequestError(
                f"max_detections must be a whole number in 1..{MAX_DETECTIONS_LIMIT}, got {value:g}"
            )
        return int(value)

    async def _detect(self, request: Any) -> dict[str, Any]:
        image = bls.read_image(request, self._max_side)
        threshold = bls.read_score_threshold(request)
        limit = self._limit(request)
        batch, image_size = decode.preprocess(image, self._size)
        outputs = await bls.call_net(self._net, INPUT, batch, self._outputs)
        levels = len(self._strides)
        found = decode.decode(
            outputs[:levels],
            outputs[levels:],
            self._strides,
            self._size,
            self._reg_max,
            image_size,
            self._score if threshold is None else threshold,
            self._nms,
            limit,
        )
        return {
            "boxes": found.boxes,
            "scores": found.scores,
            "labels": found.labels,
            "label_names": self._names[found.labels.astype(np.int64)],
        }
