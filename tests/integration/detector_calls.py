"""Calling a served face detector the way a tritonclient user would."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient

Array = npt.NDArray[Any]


def detect_faces(url: str, model: str, image: Array, **scalars: float) -> tuple[Array, ...]:
    """(boxes, scores, landmarks) for one uint8 RGB image; `scalars` are the optional FP32 [1]
    inputs (score_threshold, min_face_size)."""
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("image", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    inputs = [tensor]
    for name, value in scalars.items():
        extra = grpcclient.InferInput(name, [1], "FP32")
        extra.set_data_from_numpy(np.array([value], np.float32))
        inputs.append(extra)
    result = client.infer(model, inputs)
    return tuple(result.as_numpy(n) for n in ("boxes", "scores", "landmarks"))
