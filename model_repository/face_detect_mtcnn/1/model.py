"""face_detect_mtcnn: the whole MTCNN face detector as one Triton model (Python backend, BLS).

The numpy steps live in `mtcnn_cascade.py` next to this file, request reading and the BLS call
in `detector_io.py` (shared with face_detect_scrfd); the three networks are the
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
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import detector_io as bls  # found through the line above; installed by `python -m export`
import mtcnn_cascade as cascade

MIN_FACE_FLOOR = float(cascade.CELL)  # below P-Net's cell the pyramid would have to enlarge


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._settings = cascade.Settings(
            min_face_size=float(bls.parameter(config, "min_face_size")),
            scale_factor=float(bls.parameter(config, "scale_factor")),
            pnet_threshold=float(bls.parameter(config, "pnet_threshold")),
            rnet_threshold=float(bls.parameter(config, "rnet_threshold")),
            onet_threshold=float(bls.parameter(config, "onet_threshold")),
            rnet_batch=int(bls.parameter(config, "rnet_max_batch")),
            onet_batch=int(bls.parameter(config, "onet_max_batch")),
        )
        self._models = {
            "pnet": bls.parameter(config, "pnet_model"),
            "rnet": bls.parameter(config, "rnet_model"),
            "onet": bls.parameter(config, "onet_model"),
        }
        self._max_side = int(bls.parameter(config, "max_image_side"))

    async def execute(self, requests: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(
                *(bls.answer("face_detect_mtcnn", self._detect, r) for r in requests)
            )
        )

    def finalize(self) -> None:
        pass

    async def _detect(self, request: Any) -> cascade.Detections:
        image = bls.read_image(request, self._max_side)
        return await self._drive(cascade.detect(image, self._read_settings(request)))

    def _read_settings(self, request: Any) -> cascade.Settings:
        settings = self._settings
        min_face = bls.read_scalar(request, "min_face_size")
        if min_face is not None:
            if min_face < MIN_FACE_FLOOR:
                raise bls.RequestError(
                    f"min_face_size must be ≥ {MIN_FACE_FLOOR:g}, got {min_face:g}"
                )
            settings = dataclasses.replace(settings, min_face_size=min_face)
        threshold = bls.read_score_threshold(request)
        if threshold is not None:
            settings = dataclasses.replace(settings, onet_threshold=threshold)
        return settings

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
        nets = cascade.NETS[net]
        return await bls.call_net(self._models[net], nets.input, batch, nets.outputs)
