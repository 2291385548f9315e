"""Tiny TF.js graph models written by hand (model.json + a weights shard, in the layout
tfjs-converter writes), and numpy references of the TensorFlow ops they use, written from
TensorFlow's documented semantics (not from the converter under test)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from export.tfjs_model import read_model
from export.tfjs_onnx import Converted, convert

DTYPES = {np.dtype(np.float32): "DT_FLOAT", np.dtype(np.int32): "DT_INT32"}


def attr(value: Any) -> dict[str, Any]:
    """A Python value as a protobuf-JSON AttrValue."""
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": str(value)}
    if isinstance(value, float):
        return {"f": value}
    if isinstance(value, str) and value.startswith("DT_"):
        return {"type": value}
    if isinstance(value, str):
        return {"s": base64.b64encode(value.encode()).decode()}
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return {"list": {"s": [base64.b64encode(v.encode()).decode() for v in value]}}
    if isinstance(value, list | tuple):
        return {"list": {"i": [str(v) for v in value]}}
    raise TypeError(value)


def node(name: str, op: str, inputs: Sequence[str] = (), **attrs: Any) -> dict[str, Any]:
    return {
        "name": name,
        "op": op,
        "input": list(inputs),
        "attr": {k: attr(v) for k, v in attrs.items()},
    }


class TfjsModel:
    """Builds one model.json: a Placeholder, Const nodes backed by weights, op nodes."""

    def __init__(self, shape: Sequence[int], dtype: str = "DT_FLOAT") -> None:
        dims = [{"size": str(d)} for d in shape]
        placeholder = node("x", "Placeholder", dtype=dtype)
        placeholder["attr"]["shape"] = {"shape": {"dim": dims}}
        self.nodes: list[dict[str, Any]] = [placeholder]
        self.weights: list[tuple[str, np.ndarray, dict[str, Any] | None]] = []

    def const(self, name: str, value: Any, dtype: str | None = None) -> str:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype == np.int64:
            array = array.astype(np.int32)  # TF.js stores int64 as int32
        declared = dtype or DTYPES[array.dtype]
        self.nodes.append(node(name, "Const", dtype=declared))
        self.weights.append((name, array, None))
        return name

    def quantised_const(self, name: str, values: np.ndarray, kind: str) -> np.ndarray:
        """A float32 Const stored quantised; returns the value TF.js would decode."""
        self.nodes.append(node(name, "Const", dtype="DT_FLOAT"))
        entry = quantised(name, values.astype(np.float32), kind)
        self.weights.append(entry)
        return entry[1]

    def op(self, name: str, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        self.nodes.append(node(name, op, inputs, **attrs))
        return name

    def write(self, folder: Path, outputs: Sequence[str]) -> Path:
        """model.json and group1-shard1of1.bin in `folder`; `outputs` as 'node:index'."""
        data, specs = b"", []
        for name, array, quantization in self.weights:
            spec: dict[str, Any] = {
                "name": name,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
            }
            if quantization is None:
                data += array.astype(array.dtype.newbyteorder("<")).tobytes()
            else:
                stored = dict(quantization)
                data += stored.pop("_bytes")
                spec["quantization"] = stored
            specs.append(spec)
        (folder / "group1-shard1of1.bin").write_bytes(data)
        model = {
            "format": "graph-model",
            "generatedBy": "tests",
            "convertedBy": "tests",
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "signature": {"outputs": {o: {"name": o} for o in outputs}},
            "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": specs}],
        }
        path = folder / "model.json"
        path.write_text(json.dumps(model))
        return path


def convert_and_run(
    model: TfjsModel, folder: Path, outputs: Sequence[str], x: np.ndarray
) -> tuple[list[np.ndarray], Converted]:
    """Convert the model and run it on ONNX Runtime: its outputs in order, and the result."""
    path = model.write(folder, outputs)
    names = {o: f"out{i}" for i, o in enumerate(outputs)}
    converted = convert(read_model(path), {"x": "input"}, names)
    session = ort.InferenceSession(
        converted.model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(list(names.values()), {"input": x}), converted


# --- numpy references (NHWC, TensorFlow semantics) ----------------------------------------


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME: output ceil(size / stride), the odd pixel of padding at the end."""
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    stride: int,
    padding: str | Sequence[int],
    dilation: int = 1,
    depthwise: bool = False,
) -> np.ndarray:
    """NHWC convolution; `w` is [kh, kw, in, out] (or [kh, kw, C, M] for depthwise);
    padding "VALID", "SAME" or (top, bottom, left, right)."""
    kh, kw = w.shape[:2]
    pads: tuple[int, ...]
    if padding == "VALID":
        pads = (0, 0, 0, 0)
    elif padding == "SAME":
        pads = (
            *same_pads(x.shape[1], kh, stride, dilation),
            *same_pads(x.shape[2], kw, stride, dilation),
        )
    else:
        pads = tuple(int(p) for p in padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[:2], pads[2:], (0, 0)))
    out_h = (xp.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    out_w = (xp.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    taps = np.stack(
        [
            np.stack(
                [
                    xp[
                        :,
                        i * dilation : i * dilation + stride * (out_h - 1) + 1 : stride,
                        j * dilation : j * dilation + stride * (out_w - 1) + 1 : stride,
                    ]
                    for j in range(kw)
                ],
                axis=3,
            )
            for i in range(kh)
        ],
        axis=3,
    )  # [N, out_h, out_w, kh, kw, C]
    if depthwise:
        out = np.einsum("nhwijc,ijcm->nhwcm", taps, w.astype(np.float64))
        return out.reshape(*out.shape[:3], -1)
    return np.einsum("nhwijc,ijco->nhwo", taps, w.astype(np.float64))


def pool(x: np.ndarray, kernel: int, stride: int, padding: str, kind: str) -> np.ndarray:
    """NHWC max or average pooling; SAME windows ignore the padded cells (TensorFlow's rule)."""
    pads = (
        (0, 0, 0, 0)
        if padding == "VALID"
        else (*same_pads(x.shape[1], kernel, stride, 1), *same_pads(x.shape[2], kernel, stride, 1))
    )
    fill = -np.inf if kind == "max" else np.nan
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[:2], pads[2:], (0, 0)), constant_values=fill)
    out_h = (xp.shape[1] - kernel) // stride + 1
    out_w = (xp.shape[2] - kernel) // stride + 1
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]))
    for r in range(out_h):
        for c in range(out_w):
            window = xp[:, r * stride : r * stride + kernel, c * stride : c * stride + kernel]
            out[:, r, c] = window.max(axis=(1, 2)) if kind == "max" else np.nanmean(window, (1, 2))
    return out


def _source(out: int, size_in: int, size_out: int, align: bool, half: bool) -> np.ndarray:
    if align and size_out > 1:
        return np.arange(out) * ((size_in - 1) / (size_out - 1))
    scale = size_in / size_out
    return (np.arange(out) + 0.5) * scale - 0.5 if half else np.arange(out) * scale


def resize_bilinear(x: np.ndarray, size: tuple[int, int], align: bool, half: bool) -> np.ndarray:
    """tf.image.resize_bilinear on NHWC: source coordinates per mode, clamped to the image."""
    result = x.astype(np.float64)
    for axis, target in ((1, size[0]), (2, size[1])):
        source = result.shape[axis]
        coordinate = np.clip(_source(target, source, target, align, half), 0, source - 1)
        low = np.floor(coordinate).astype(int)
        high = np.minimum(low + 1, source - 1)
        frac = (coordinate - low).reshape([-1 if a == axis else 1 for a in range(4)])
        result = np.take(result, low, axis) * (1 - frac) + np.take(result, high, axis) * frac
    return result


def resize_nearest(x: np.ndarray, size: tuple[int, int], align: bool, half: bool) -> np.ndarray:
    """tf.image.resize_nearest_neighbor: floor of the source coordinate ((x + 0.5)·scale with
    half-pixel centres), rounded instead (halves up, as roundf and Math.round do for these
    non-negative coordinates) with align_corners."""
    result = x
    for axis, target in ((1, size[0]), (2, size[1])):
        source = result.shape[axis]
        if align and target > 1:
            index = np.floor(np.arange(target) * ((source - 1) / (target - 1)) + 0.5)
        elif half:
            index = np.floor((np.arange(target) + 0.5) * (source / target))
        else:
            index = np.floor(np.arange(target) * (source / target))
        result = np.take(result, np.clip(index.astype(int), 0, source - 1), axis)
    return result


def quantised(name: str, values: np.ndarray, kind: str) -> tuple[str, np.ndarray, dict]:
    """A weight entry stored as float16, or affine uint8/uint16 (with its exact dequantised
    value as TF.js computes it)."""
    if kind == "float16":
        stored = values.astype(np.float16)
        return name, stored.astype(np.float32), {"dtype": "float16", "_bytes": stored.tobytes()}
    levels = 255 if kind == "uint8" else 65535
    low, high = float(values.min()), float(values.max())
    scale = (high - low) / levels
    codes = np.round((values - low) / scale).astype(kind)
    exact = (codes.astype(np.float64) * scale + low).astype(values.dtype)
    return name, exact, {"dtype": kind, "scale": scale, "min": low, "_bytes": codes.tobytes()}


def weights_of(model: TfjsModel) -> Mapping[str, np.ndarray]:
    return {name: array for name, array, _ in model.weights}
