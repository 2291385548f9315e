"""Reading a TF.js graph model: `model.json` (the frozen TensorFlow graph as JSON, its
signature, and the weights manifest) and the binary weight shards it names.

Facts of the format (tfjs-converter's output, read by tfjs-core's io and weights loader):
- `modelTopology.node` is a GraphDef: each node has `name`, `op`, `input` ("name", "name:k"
  for a node's k-th output, "^name" for a control dependency) and `attr` in protobuf JSON
  (`i` int64 as a string, `f`, `b`, `s` base64 bytes, `type`, `shape`, `list`).
- Every Const node's value lives in the weights: each manifest group lists its shard files
  (`paths`, concatenated in order) and its weights, laid out one after another in that data.
- A weight may be quantised: `float16` (half floats) or `uint8`/`uint16` (affine: q·scale +
  min, evaluated in float64 then stored as float32, rounded when the original was int32).
- int64 tensors are stored as int32 (TF.js has no int64 dtype).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ConversionError
from export.spec import Array

FORMAT = "graph-model"
# Bytes per stored element, by the dtype it is stored as.
STORED_SIZES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "uint16": 2, "float16": 2}
TF_DTYPES: dict[str, type[np.generic]] = {
    "DT_FLOAT": np.float32,
    "DT_HALF": np.float16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_BOOL": np.bool_,
}


@dataclass(frozen=True)
class TfjsNode:
    name: str
    op: str
    # (producing node, output index) for each data input; control inputs are dropped.
    inputs: tuple[tuple[str, int], ...]
    attrs: Mapping[str, Any]

    def attr_int(self, key: str, default: int | None = None) -> int:
        return int(self._attr(key, "i", default))

    def attr_float(self, key: str, default: float | None = None) -> float:
        return float(self._attr(key, "f", default))

    def attr_bool(self, key: str, default: bool | None = None) -> bool:
        return bool(self._attr(key, "b", default))

    def attr_str(self, key: str, default: str | None = None) -> str:
        value = self.attrs.get(key, {}).get("s")
        if value is None:
            if default is None:
                raise ConversionError(f"{self.op} {self.name}: attribute '{key}' is missing")
            return default
        return base64.b64decode(value).decode()

    def attr_ints(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        values = self.attrs.get(key, {}).get("list", {}).get("i")
        if values is None:
            if default is None:
                raise ConversionError(f"{self.op} {self.name}: attribute '{key}' is missing")
            return default
        return tuple(int(v) for v in values)

    def attr_strs(self, key: str) -> tuple[str, ...]:
        values = self.attrs.get(key, {}).get("list", {}).get("s", [])
        return tuple(base64.b64decode(v).decode() for v in values)

    def attr_dtype(self, key: str) -> type[np.generic]:
        name = self.attrs.get(key, {}).get("type")
        if name not in TF_DTYPES:
            raise ConversionError(f"{self.op} {self.name}: unsupported dtype {name!r} in '{key}'")
        return TF_DTYPES[name]

    def _attr(self, key: str, kind: str, default: Any) -> Any:
        value = self.attrs.get(key, {}).get(kind)
        if value is None:
            if default is None:
                raise ConversionError(f"{self.op} {self.name}: attribute '{key}' is missing")
            return default
        return value


@dataclass(frozen=True)
class TfjsInput:
    name: str  # the Placeholder node
    dtype: type[np.generic]
    shape: tuple[int, ...]  # -1 where unknown


@dataclass(frozen=True)
class TfjsGraph:
    nodes: tuple[TfjsNode, ...]
    inputs: tuple[TfjsInput, ...]
    outputs: tuple[tuple[str, int], ...]  # as the signature orders them
    constants: Mapping[str, Array]
    metadata: Mapping[str, str]  # format, generatedBy, convertedBy

    def node(self, name: str) -> TfjsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def parse_reference(text: str) -> tuple[str, int]:
    """'name' → (name, 0); 'name:2' → (name, 2). Node names may not contain ':'."""
    name, _, index = text.partition(":")
    return name, int(index) if index else 0


def tensor_name(reference: tuple[str, int]) -> str:
    return f"{reference[0]}:{reference[1]}"


def read_model(model_json: Path) -> TfjsGraph:
    """The graph, its constants (dequantised) and its signature from a model.json and the
    shards beside it."""
    model = json.loads(model_json.read_text())
    if model.get("format") != FORMAT:
        raise ConversionError(f"{model_json}: format {model.get('format')!r}, not '{FORMAT}'")
    if model.get("modelInitializer"):
        raise ConversionError(f"{model_json}: models with an initializer graph are not supported")
    topology = model["modelTopology"]
    if topology.get("library", {}).get("function"):
        raise ConversionError(
            f"{model_json}: graphs with functions (control flow) are not supported"
        )
    nodes = tuple(_node(raw) for raw in topology["node"])
    constants = read_weights(model["weightsManifest"], model_json.parent)
    missing = [n.name for n in nodes if n.op == "Const" and n.name not in constants]
    if missing:
        raise ConversionError(f"{model_json}: Const nodes without a weight: {missing[:5]}")
    inputs = tuple(_placeholder(n) for n in nodes if n.op == "Placeholder")
    metadata = {k: str(model[k]) for k in ("format", "generatedBy", "convertedBy") if k in model}
    return TfjsGraph(nodes, inputs, _outputs(model, nodes), constants, metadata)


def _node(raw: Mapping[str, Any]) -> TfjsNode:
    inputs = tuple(parse_reference(i) for i in raw.get("input", []) if not i.startswith("^"))
    return TfjsNode(raw["name"], raw["op"], inputs, raw.get("attr", {}))


def _placeholder(node: TfjsNode) -> TfjsInput:
    dims = node.attrs.get("shape", {}).get("shape", {}).get("dim", [])
    shape = tuple(int(d.get("size", -1)) for d in dims)
    return TfjsInput(node.name, node.attr_dtype("dtype"), shape)


def _outputs(model: Mapping[str, Any], nodes: tuple[TfjsNode, ...]) -> tuple[tuple[str, int], ...]:
    """The signature's outputs; without one, every non-constant node nothing consumes."""
    signature = model.get("signature", {}).get("outputs")
    if signature:
        return tuple(parse_reference(v.get("name", k)) for k, v in signature.items())
    consumed = {name for node in nodes for name, _ in node.inputs}
    return tuple(
        (n.name, 0) for n in nodes if n.name not in consumed and n.op not in ("Const", "NoOp")
    )


def read_weights(manifest: Sequence[Mapping[str, Any]], folder: Path) -> dict[str, Array]:
    """Every weight of every group, by name, dequantised as TF.js does."""
    weights: dict[str, Array] = {}
    for group in manifest:
        data = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            value, size = decode_weight(spec, data, offset)
            weights[spec["name"]] = value
            offset += size
        if offset != len(data):
            raise ConversionError(
                f"weights group {group['paths']}: {len(data)} bytes, the manifest describes "
                f"{offset}"
            )
    return weights


def decode_weight(spec: Mapping[str, Any], data: bytes, offset: int) -> tuple[Array, int]:
    """One weight at `offset`: its value and the bytes it took."""
    name, dtype, shape = spec["name"], spec["dtype"], tuple(int(d) for d in spec["shape"])
    quantization = spec.get("quantization")
    stored = quantization["dtype"] if quantization else dtype
    if stored not in STORED_SIZES or dtype not in STORED_SIZES:
        raise ConversionError(
            f"weight {name}: dtype {dtype!r} stored as {stored!r} is not supported"
        )
    count = int(np.prod(shape, dtype=np.int64))
    size = count * STORED_SIZES[stored]
    if offset + size > len(data):
        raise ConversionError(f"weight {name}: needs {size} bytes at {offset}, data ends first")
    raw = np.frombuffer(data, dtype=np.dtype(stored).newbyteorder("<"), count=count, offset=offset)
    value = _dequantise(name, raw, dtype, quantization) if quantization else raw
    # A copy (the buffer is shared); not ascontiguousarray, which makes a scalar 1-D.
    return value.astype(dtype).reshape(shape).copy(), size


def _dequantise(name: str, raw: Array, dtype: str, quantization: Mapping[str, Any]) -> Array:
    if quantization["dtype"] == "float16":
        if dtype != "float32":
            raise ConversionError(f"weight {name}: float16 quantisation of a {dtype} weight")
        return raw.astype(np.float32)
    if "scale" not in quantization or "min" not in quantization:
        raise ConversionError(f"weight {name}: affine quantisation without scale and min")
    values = raw.astype(np.float64) * float(quantization["scale"]) + float(quantization["min"])
    if dtype == "int32":
        # JavaScript's Math.round: halves go up.
        rounded: Array = np.floor(values + 0.5).astype(np.int32)
        return rounded
    result: Array = values.astype(np.float32)
    return result
