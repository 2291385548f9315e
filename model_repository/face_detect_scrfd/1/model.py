"""face_detect_scrfd: SCRFD face detection as one Triton model (Python backend, BLS).

The image is letterboxed to a square (ratio kept, zero padding bottom/right), the network
`scrfd_10g` is called through BLS, and its 9 outputs are decoded in `scrfd_decode.py` next to
this file (anchor centres, distances × stride, score threshold, NMS, back to original pixels);
request reading and the BLS call are `detector_io.py`'s, shared with face_detect_mtcnn.

Inputs:  image UINT8 [H, W, 3] RGB; optional score_threshold FP32 [1] (in [0, 1]).
Outputs: boxes FP32 [K, 4] (x1, y1, x2, y2), scores FP32 [K] (descending), landmarks FP32
         [K, 5, 2] (x, y). A malformed request gets INVALID_ARG; a failing call fails only it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import detector_io as bls  # found through the line above; installed by `python -m export`
import scrfd_decode as decode

INPUT = "input.1"
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in decode.STRIDES)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._net = bls.parameter(config, "net_model")
        self._size = int(bls.parameter(config, "input_size"))
        self._score = float(bls.parameter(config, "score_threshold"))
        self._nms = float(bls.parameter(config, "nms_threshold"))
        self._max_side = int(bls.parameter(config, "max_image_side"))

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(
                *(bls.answer("face_detect_scrfd", self._detect, r) for r in requests)
            )
        )

    def finalize(self) -> None:
        pass

    async def _detect(self, request: Any) -> decode.Detections:
        image = bls.read_image(request, self._max_side)
        threshold = bls.read_score_threshold(request)
        batch, scale = decode.letterbox(image, self._size)
        outputs = await bls.call_net(self._net, INPUT, batch, OUTPUTS)
        score = self._score if threshold is None else threshold
        return decode.decode(outputs, self._size, scale, score, self._nms)
