"""The project's own TF.js graph → ONNX converter (no TensorFlow needed).

Each TensorFlow op the graph uses is mapped onto ONNX nodes with the same semantics; an op
without a mapping stops the conversion with an error naming every such op. Ops whose inputs
are all constants are evaluated here instead (the shape arithmetic a converted graph carries,
e.g. SparseToDense on empty indices feeding a Reshape); SparseToDense is only accepted that
way. TensorFlow's image ops work on NHWC: those are wrapped in transposes to ONNX's NCHW, and
`export.onnx_layout` then cancels the transposes that meet, so the result is a plain NCHW
graph. Layout facts used:
- Conv2D filters are [H, W, in, out] → ONNX [out, in, H, W]; depthwise filters [H, W, C, M]
  → [C·M, 1, H, W] with group C (TF's output channel c·M + m is ONNX's group c, member m).
- TF SAME padding puts the odd pixel at the end: ONNX auto_pad SAME_UPPER.
- ResizeBilinear: half_pixel_centers → "half_pixel" (both clamp the source coordinate at 0),
  align_corners → "align_corners", neither → "asymmetric". ResizeNearestNeighbor floors
  (x + 0.5)·scale with half-pixel centres, which is "half_pixel" rounding halves up; with
  align_corners it rounds halves away from zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import ConversionError
from export.onnx_layout import simplify
from export.spec import Array
from export.tfjs_model import TfjsGraph, TfjsNode, tensor_name

OPSET = 17
IR_VERSION = 9  # what the pinned onnxruntime reads
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)


@dataclass(frozen=True)
class Tensor:
    """A value computed by the ONNX graph at run time."""

    name: str


@dataclass(frozen=True)
class Const:
    """A value known at conversion time (a TF Const, or an op folded over constants)."""

    value: Array


Value = Tensor | Const


class UnsupportedOpsError(ConversionError):
    """The graph uses ops this converter has no mapping for."""

    def __init__(self, ops: Mapping[str, str]) -> None:
        self.ops = dict(ops)
        listed = ", ".join(f"{op} (e.g. node '{node}')" for op, node in sorted(ops.items()))
        super().__init__(f"TF.js ops without an ONNX mapping: {listed}")


@dataclass(frozen=True)
class Converted:
    model: onnx.ModelProto
    ops: Mapping[str, int]  # TF op → how many nodes of it were converted (folded included)
    folded: int  # nodes evaluated at conversion time
    rewrites: Mapping[str, int]  # what export.onnx_layout simplified


class _Builder:
    """The ONNX graph under construction: nodes, initializers, unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._taken: set[str] = set()

    def unique(self, base: str) -> str:
        name, index = base, 1
        while name in self._taken:
            name, index = f"{base}_{index}", index + 1
        self._taken.add(name)
        return name

    def constant(self, value: Array, base: str) -> str:
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ref(self, value: Value, base: str) -> str:
        """The name of a value inside the graph (a constant becomes an initializer)."""
        if isinstance(value, Tensor):
            return value.name
        return self.constant(value.value, f"{base}/const")

    def emit(
        self, op_type: str, inputs: Sequence[str], base: str, outputs: int = 1, **attrs: Any
    ) -> list[str]:
        names = [self.unique(base if outputs == 1 else f"{base}:{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names

    def one(self, op_type: str, inputs: Sequence[str], base: str, **attrs: Any) -> Tensor:
        return Tensor(self.emit(op_type, inputs, base, **attrs)[0])


Emitter = Callable[[_Builder, TfjsNode, list[Value]], list[Value]]
Folder = Callable[[TfjsNode, list[Array]], list[Array]]


def _const(node: TfjsNode, value: Value, what: str) -> Array:
    if not isinstance(value, Const):
        raise ConversionError(f"{node.op} {node.name}: {what} must be a constant")
    return value.value


def _ints(node: TfjsNode, value: Value, what: str) -> list[int]:
    return [int(v) for v in _const(node, value, what).reshape(-1)]


# --- layout helpers ---------------------------------------------------------------------


def _is_nchw(node: TfjsNode) -> bool:
    return node.attr_str("data_format", "NHWC") == "NCHW"


def _to_nchw(g: _Builder, node: TfjsNode, x: Value) -> str:
    source = g.ref(x, node.name)
    if _is_nchw(node):
        return source
    return g.emit("Transpose", [source], f"{node.name}/to_nchw", perm=list(TO_NCHW))[0]


def _from_nchw(g: _Builder, node: TfjsNode, y: str) -> Tensor:
    if _is_nchw(node):
        return Tensor(y)
    return g.one("Transpose", [y], f"{node.name}/to_nhwc", perm=list(TO_NHWC))


def _spatial(node: TfjsNode, key: str, default: tuple[int, ...]) -> list[int]:
    """The H, W entries of a 4-item NHWC/NCHW attribute (strides, dilations, ksize)."""
    values = node.attr_ints(key, default)
    return list(values[2:4] if _is_nchw(node) else values[1:3])


def _padding(node: TfjsNode, kernel: list[int]) -> dict[str, Any]:
    """ONNX padding for a window of `kernel` (H, W). With stride 1, SAME's amount does not
    depend on the input size, so it is written out (ONNX Runtime refuses auto_pad with
    dilation); with larger strides it does, so ONNX works it out (SAME_UPPER)."""
    padding = node.attr_str("padding")
    if padding == "VALID":
        return {"pads": [0, 0, 0, 0]}
    strides = _spatial(node, "strides", (1, 1, 1, 1))
    dilations = _spatial(node, "dilations", (1, 1, 1, 1))
    if padding == "SAME" and strides == [1, 1]:
        totals = [(k - 1) * d for k, d in zip(kernel, dilations, strict=True)]
        return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}
    if padding == "SAME" and dilations == [1, 1]:
        return {"auto_pad": "SAME_UPPER"}
    if padding == "SAME":
        raise ConversionError(f"{node.op} {node.name}: SAME padding with strides and dilations")
    if padding == "EXPLICIT":
        pairs = node.attr_ints("explicit_paddings")
        h, w = (pairs[4:6], pairs[6:8]) if _is_nchw(node) else (pairs[2:4], pairs[4:6])
        return {"pads": [h[0], w[0], h[1], w[1]]}
    raise ConversionError(f"{node.op} {node.name}: padding {padding!r} is not supported")


# --- convolutions -----------------------------------------------------------------------


def _conv(
    g: _Builder, node: TfjsNode, x: Value, weight: Array, group: int, bias: Array | None
) -> str:
    inputs = [_to_nchw(g, node, x), g.constant(weight, f"{node.name}/weight")]
    if bias is not None:
        inputs.append(g.constant(bias.astype(weight.dtype), f"{node.name}/bias"))
    return g.emit(
        "Conv",
        inputs,
        f"{node.name}/conv",
        kernel_shape=list(weight.shape[2:]),
        strides=_spatial(node, "strides", (1, 1, 1, 1)),
        dilations=_spatial(node, "dilations", (1, 1, 1, 1)),
        group=group,
        **_padding(node, list(weight.shape[2:])),
    )[0]


def _conv_weight(node: TfjsNode, filt: Value) -> Array:
    value = _const(node, filt, "the filter")
    if value.ndim != 4:
        raise ConversionError(f"{node.op} {node.name}: filter of rank {value.ndim}")
    return np.ascontiguousarray(value.transpose(3, 2, 0, 1))


def _depthwise_weight(node: TfjsNode, filt: Value) -> tuple[Array, int]:
    value = _const(node, filt, "the filter")
    height, width, channels, multiplier = value.shape
    weight = value.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width)
    return np.ascontiguousarray(weight), int(channels)


def _conv2d(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    return [_from_nchw(g, node, _conv(g, node, args[0], _conv_weight(node, args[1]), 1, None))]


def _depthwise(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    weight, channels = _depthwise_weight(node, args[1])
    return [_from_nchw(g, node, _conv(g, node, args[0], weight, channels, None))]


def _fused(g: _Builder, node: TfjsNode, args: list[Value], depthwise: bool) -> list[Value]:
    """Conv + BiasAdd (+ one activation), tfjs-converter's fusion of those three nodes."""
    fused = node.attr_strs("fused_ops")
    extra = args[2 : 2 + node.attr_int("num_args", len(args) - 2)]
    if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or not extra:
        raise ConversionError(f"{node.op} {node.name}: fused ops {list(fused)} not supported")
    bias = _const(node, extra[0], "the bias")
    if depthwise:
        weight, group = _depthwise_weight(node, args[1])
    else:
        weight, group = _conv_weight(node, args[1]), 1
    y = _from_nchw(g, node, _conv(g, node, args[0], weight, group, bias))
    if len(fused) == 1:
        return [y]
    alpha = extra[1] if len(extra) > 1 else None
    return [_activation(g, node, fused[1], y, alpha)]


def _activation(g: _Builder, node: TfjsNode, name: str, x: Tensor, alpha: Value | None) -> Tensor:
    base = f"{node.name}/{name.lower()}"
    if name in ("Relu", "Sigmoid", "Elu"):
        return g.one(name, [x.name], base)
    if name == "Relu6":
        return _relu6(g, x.name, base)
    if name == "LeakyRelu":
        return g.one("LeakyRelu", [x.name], base, alpha=node.attr_float("leakyrelu_alpha", 0.2))
    if name == "Prelu" and alpha is not None:
        return g.one("PRelu", [x.name, g.ref(alpha, base)], base)
    raise ConversionError(f"{node.op} {node.name}: fused activation {name!r} not supported")


def _relu6(g: _Builder, x: str, base: str) -> Tensor:
    low = g.constant(np.array(0.0, np.float32), f"{base}/min")
    high = g.constant(np.array(6.0, np.float32), f"{base}/max")
    return g.one("Clip", [x, low, high], base)


# --- element-wise -----------------------------------------------------------------------

BINARY: dict[str, tuple[str, Callable[[Array, Array], Any]]] = {
    "Add": ("Add", np.add),
    "AddV2": ("Add", np.add),
    "Sub": ("Sub", np.subtract),
    "Mul": ("Mul", np.multiply),
    "RealDiv": ("Div", np.divide),
    "Maximum": ("Max", np.maximum),
    "Minimum": ("Min", np.minimum),
}
UNARY = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu"}


def _binary(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    op = BINARY[node.op][0]
    return [g.one(op, [g.ref(a, node.name) for a in args], node.name)]


def _bias_add(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    bias = _const(node, args[1], "the bias")
    if _is_nchw(node):
        bias = bias.reshape(-1, 1, 1)
    return [
        g.one("Add", [g.ref(args[0], node.name), g.constant(bias, node.name + "/bias")], node.name)
    ]


def _unary(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    return [g.one(UNARY[node.op], [g.ref(args[0], node.name)], node.name)]


def _relu6_op(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    return [_relu6(g, g.ref(args[0], node.name), node.name)]


def _leaky_relu(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    alpha = node.attr_float("alpha", 0.2)
    return [g.one("LeakyRelu", [g.ref(args[0], node.name)], node.name, alpha=alpha)]


def _softmax(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    return [g.one("Softmax", [g.ref(args[0], node.name)], node.name, axis=-1)]


def _cast(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    target = helper.np_dtype_to_tensor_dtype(np.dtype(node.attr_dtype("DstT")))
    return [g.one("Cast", [g.ref(args[0], node.name)], node.name, to=target)]


def _identity(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    return [args[0]]


# --- shapes and data movement -----------------------------------------------------------


def _concat(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    axis_value, parts = (args[-1], args[:-1]) if node.op == "ConcatV2" else (args[0], args[1:])
    (axis,) = _ints(node, axis_value, "the axis")
    names = [g.ref(p, node.name) for p in parts]
    return [g.one("Concat", names, node.name, axis=axis)]


def _reshape(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    shape = np.asarray(_ints(node, args[1], "the shape"), np.int64)
    # TF's 0 is an empty axis; ONNX reads 0 as "copy" unless allowzero is set.
    extra = {"allowzero": 1} if 0 in shape else {}
    target = g.constant(shape, f"{node.name}/shape")
    return [g.one("Reshape", [g.ref(args[0], node.name), target], node.name, **extra)]


def _transpose(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    perm = _ints(node, args[1], "the permutation")
    return [g.one("Transpose", [g.ref(args[0], node.name)], node.name, perm=perm)]


def _squeeze(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    axes = list(node.attr_ints("squeeze_dims", ()))
    inputs = [g.ref(args[0], node.name)]
    if axes:
        inputs.append(g.constant(np.asarray(axes, np.int64), f"{node.name}/axes"))
    return [g.one("Squeeze", inputs, node.name)]


def _expand_dims(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    axes = g.constant(np.asarray(_ints(node, args[1], "the axis"), np.int64), f"{node.name}/axes")
    return [g.one("Unsqueeze", [g.ref(args[0], node.name), axes], node.name)]


def _split(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    (axis,) = _ints(node, args[0], "the split axis")
    count = node.attr_int("num_split")
    names = g.emit("Split", [g.ref(args[1], node.name)], node.name, outputs=count, axis=axis)
    return [Tensor(n) for n in names]


def _split_v(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    sizes = _ints(node, args[1], "the split sizes")
    (axis,) = _ints(node, args[2], "the split axis")
    if any(s < 0 for s in sizes):
        raise ConversionError(f"SplitV {node.name}: an inferred (-1) split size is not supported")
    split = g.constant(np.asarray(sizes, np.int64), f"{node.name}/sizes")
    names = g.emit(
        "Split", [g.ref(args[0], node.name), split], node.name, outputs=len(sizes), axis=axis
    )
    return [Tensor(n) for n in names]


def _pads(node: TfjsNode, value: Value) -> Array:
    pairs = _const(node, value, "the paddings").reshape(-1, 2).astype(np.int64)
    return np.concatenate([pairs[:, 0], pairs[:, 1]])


def _pad(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    inputs = [g.ref(args[0], node.name), g.constant(_pads(node, args[1]), f"{node.name}/pads")]
    if node.op == "PadV2":
        fill = _const(node, args[2], "the pad value").reshape(())
        inputs.append(g.constant(fill, f"{node.name}/value"))
    return [g.one("Pad", inputs, node.name, mode="constant")]


def _mirror_pad(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    mode = node.attr_str("mode")
    if mode != "REFLECT":  # ONNX has no SYMMETRIC (edge pixel repeated) mode
        raise ConversionError(f"MirrorPad {node.name}: mode {mode!r} is not supported")
    inputs = [g.ref(args[0], node.name), g.constant(_pads(node, args[1]), f"{node.name}/pads")]
    return [g.one("Pad", inputs, node.name, mode="reflect")]


# --- pooling and resizing ---------------------------------------------------------------


def _pool(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    op = "MaxPool" if node.op == "MaxPool" else "AveragePool"
    # TF's average excludes the padded cells of a SAME window.
    extra = {"count_include_pad": 0} if op == "AveragePool" else {}
    kernel = _spatial(node, "ksize", (1, 1, 1, 1))
    pooled = g.emit(
        op,
        [_to_nchw(g, node, args[0])],
        f"{node.name}/pool",
        kernel_shape=kernel,
        strides=_spatial(node, "strides", (1, 1, 1, 1)),
        **_padding(node, kernel),
        **extra,
    )[0]
    return [_from_nchw(g, node, pooled)]


def _resize_mode(node: TfjsNode) -> dict[str, Any]:
    align, half = (
        node.attr_bool("align_corners", False),
        node.attr_bool("half_pixel_centers", False),
    )
    if align and half:
        raise ConversionError(f"{node.op} {node.name}: align_corners with half_pixel_centers")
    transform = "align_corners" if align else "half_pixel" if half else "asymmetric"
    if node.op == "ResizeBilinear":
        return {"mode": "linear", "coordinate_transformation_mode": transform}
    nearest = "round_prefer_ceil" if align or half else "floor"
    return {"mode": "nearest", "coordinate_transformation_mode": transform, "nearest_mode": nearest}


def _resize(g: _Builder, node: TfjsNode, args: list[Value]) -> list[Value]:
    """NHWC image and a constant [height, width] → the same in NCHW, through ONNX Resize with
    `sizes` = (N, C of the input, then the target), so any batch passes."""
    height_width = np.asarray(_ints(node, args[1], "the size"), np.int64)
    mode = _resize_mode(node)
    x = g.emit(
        "Transpose", [g.ref(args[0], node.name)], f"{node.name}/to_nchw", perm=list(TO_NCHW)
    )[0]
    shape = g.emit("Shape", [x], f"{node.name}/shape")[0]
    starts = g.constant(np.array([0], np.int64), f"{node.name}/starts")
    ends = g.constant(np.array([2], np.int64), f"{node.name}/ends")
    leading = g.emit("Slice", [shape, starts, ends], f"{node.name}/batch_channels")[0]
    target = g.constant(height_width, f"{node.name}/height_width")
    sizes = g.emit("Concat", [leading, target], f"{node.name}/sizes", axis=0)[0]
    resized = g.emit("Resize", [x, "", "", sizes], f"{node.name}/resize", **mode)[0]
    return [g.one("Transpose", [resized], f"{node.name}/to_nhwc", perm=list(TO_NHWC))]


EMITTERS: dict[str, Emitter] = {
    "Identity": _identity,
    "Conv2D": _conv2d,
    "DepthwiseConv2dNative": _depthwise,
    "FusedConv2D": lambda g, n, a: _fused(g, n, a, depthwise=False),
    "_FusedConv2D": lambda g, n, a: _fused(g, n, a, depthwise=False),
    "FusedDepthwiseConv2dNative": lambda g, n, a: _fused(g, n, a, depthwise=True),
    "_FusedDepthwiseConv2dNative": lambda g, n, a: _fused(g, n, a, depthwise=True),
    "BiasAdd": _bias_add,
    **dict.fromkeys(BINARY, _binary),
    **dict.fromkeys(UNARY, _unary),
    "Relu6": _relu6_op,
    "LeakyRelu": _leaky_relu,
    "Softmax": _softmax,
    "Cast": _cast,
    "ConcatV2": _concat,
    "Concat": _concat,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "ExpandDims": _expand_dims,
    "Split": _split,
    "SplitV": _split_v,
    "Pad": _pad,
    "PadV2": _pad,
    "MirrorPad": _mirror_pad,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "ResizeBilinear": _resize,
    "ResizeNearestNeighbor": _resize,
}


# --- constant folding -------------------------------------------------------------------


def _fold_binary(node: TfjsNode, args: list[Array]) -> list[Array]:
    result = BINARY[node.op][1](args[0], args[1])
    return [np.asarray(result).astype(np.result_type(args[0], args[1]))]


def _fold_sparse_to_dense(node: TfjsNode, args: list[Array]) -> list[Array]:
    indices, shape, values, default = args
    dense = np.full(tuple(int(d) for d in shape.reshape(-1)), default.reshape(()), values.dtype)
    index = indices.reshape(-1, dense.ndim) if indices.size else np.zeros((0, dense.ndim), int)
    flat_values = np.broadcast_to(values.reshape(-1), (index.shape[0],)) if index.size else values
    for position, value in zip(index, flat_values.reshape(-1), strict=False):
        dense[tuple(int(i) for i in position)] = value
    return [dense]


def _fold_concat(node: TfjsNode, args: list[Array]) -> list[Array]:
    axis, parts = (args[-1], args[:-1]) if node.op == "ConcatV2" else (args[0], args[1:])
    return [np.concatenate(parts, axis=int(axis))]


def _fold_squeeze(node: TfjsNode, args: list[Array]) -> list[Array]:
    axes = node.attr_ints("squeeze_dims", ())
    return [np.squeeze(args[0], axis=axes or None)]


FOLDERS: dict[str, Folder] = {
    "Identity": lambda n, a: [a[0]],
    "Cast": lambda n, a: [a[0].astype(n.attr_dtype("DstT"))],
    **dict.fromkeys(BINARY, _fold_binary),
    "Reshape": lambda n, a: [a[0].reshape(tuple(int(d) for d in a[1].reshape(-1)))],
    "Transpose": lambda n, a: [np.transpose(a[0], tuple(int(p) for p in a[1]))],
    "ExpandDims": lambda n, a: [np.expand_dims(a[0], int(a[1].reshape(-1)[0]))],
    "Squeeze": _fold_squeeze,
    "ConcatV2": _fold_concat,
    "Concat": _fold_concat,
    "SparseToDense": _fold_sparse_to_dense,
}
SOURCES = {"Const", "Placeholder"}
SUPPORTED = frozenset(SOURCES | set(EMITTERS) | set(FOLDERS))


# --- the walk ---------------------------------------------------------------------------


def _reachable(graph: TfjsGraph) -> list[TfjsNode]:
    """The nodes the outputs depend on, each after its inputs (a depth-first post-order)."""
    by_name = {n.name: n for n in graph.nodes}
    order: list[TfjsNode] = []
    done: set[str] = set()
    stack: list[tuple[str, bool]] = [(name, False) for name, _ in reversed(graph.outputs)]
    while stack:
        name, expanded = stack.pop()
        if name in done:
            continue
        if name not in by_name:
            raise ConversionError(f"node '{name}' is referenced but not in the graph")
        if expanded:
            done.add(name)
            order.append(by_name[name])
            continue
        stack.append((name, True))
        stack.extend((source, False) for source, _ in reversed(by_name[name].inputs))
    return order


def check_supported(nodes: Sequence[TfjsNode]) -> None:
    """Refuse the graph, naming each op without a mapping (and one node using it)."""
    unknown: dict[str, str] = {}
    for node in nodes:
        if node.op not in SUPPORTED:
            unknown.setdefault(node.op, node.name)
    if unknown:
        raise UnsupportedOpsError(unknown)


def _evaluate(
    g: _Builder, node: TfjsNode, args: list[Value], graph: TfjsGraph
) -> tuple[list[Value], bool]:
    """The node's outputs, and whether they were folded."""
    if node.op == "Const":
        return [Const(graph.constants[node.name].astype(node.attr_dtype("dtype")))], True
    if all(isinstance(a, Const) for a in args) and node.op in FOLDERS:
        arrays = [a.value for a in args if isinstance(a, Const)]
        return [Const(v) for v in FOLDERS[node.op](node, arrays)], True
    if node.op not in EMITTERS:
        raise ConversionError(f"{node.op} {node.name}: only supported on constant inputs")
    return EMITTERS[node.op](g, node, args), False


def convert(
    graph: TfjsGraph,
    input_names: Mapping[str, str],
    output_names: Mapping[str, str],
    name: str = "converted",
) -> Converted:
    """The graph as an ONNX model (opset 17) whose inputs and outputs are renamed as asked:
    `input_names` by Placeholder node, `output_names` by TF tensor ("node:index")."""
    nodes = _reachable(graph)
    check_supported(nodes)
    g = _Builder()
    values: dict[tuple[str, int], Value] = {}
    onnx_inputs = []
    for source in graph.inputs:
        if source.name not in input_names:
            raise ConversionError(f"no ONNX name given for input '{source.name}'")
        name_in_onnx = g.unique(input_names[source.name])
        values[(source.name, 0)] = Tensor(name_in_onnx)
        dims = [d if d >= 0 else f"{source.name}_d{i}" for i, d in enumerate(source.shape)]
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(source.dtype))
        onnx_inputs.append(helper.make_tensor_value_info(name_in_onnx, elem, dims))
    converted: Counter[str] = Counter()
    folded = 0
    for node in nodes:
        if node.op == "Placeholder":
            continue
        args = [_lookup(values, node, reference) for reference in node.inputs]
        outputs, was_folded = _evaluate(g, node, args, graph)
        if node.op != "Const":
            converted[node.op] += 1
            folded += was_folded
        for index, value in enumerate(outputs):
            values[(node.name, index)] = value
    model = _finish(g, name, onnx_inputs, _outputs(g, graph, values, output_names))
    simplified, rewrites = simplify(_static_resizes(model))
    return Converted(_with_output_shapes(simplified), dict(converted), folded, rewrites)


def _lookup(
    values: Mapping[tuple[str, int], Value], node: TfjsNode, reference: tuple[str, int]
) -> Value:
    if reference not in values:
        raise ConversionError(f"{node.op} {node.name}: input {tensor_name(reference)} is missing")
    return values[reference]


def _outputs(
    g: _Builder,
    graph: TfjsGraph,
    values: Mapping[tuple[str, int], Value],
    output_names: Mapping[str, str],
) -> list[onnx.ValueInfoProto]:
    """The graph outputs, in the order of `output_names`, which must name each one."""
    by_name = {tensor_name(r): r for r in graph.outputs}
    if set(by_name) != set(output_names):
        raise ConversionError(
            f"the graph's outputs are {sorted(by_name)}; ONNX names were given for "
            f"{sorted(output_names)}"
        )
    outputs = []
    for tf_name in output_names:
        reference = by_name[tf_name]
        value = values[reference]
        if not isinstance(value, Tensor):
            raise ConversionError(f"output '{tf_name}' is a constant; nothing to compute")
        target = g.unique(output_names[tf_name])
        g.nodes.append(helper.make_node("Identity", [value.name], [target], name=target))
        node = graph.node(reference[0])
        key = next((k for k in ("DstT", "T", "dtype") if k in node.attrs), None)
        dtype = node.attr_dtype(key) if key else np.float32
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        outputs.append(helper.make_tensor_value_info(target, elem, None))
    return outputs


def _finish(
    g: _Builder,
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.producer_name = "facet.export.tfjs_onnx"
    return model


def _static_resizes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Resize `sizes` computed from the input's shape become constant `scales` where shape
    inference knows the input's H and W and the target is a whole multiple of them (×2
    upsampling, say): the result is the same, and every later shape becomes static. Other
    factors stay `sizes`: a scale such as 9/5 has no exact float, and runtimes then disagree
    on the output size. The batch stays free."""
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {
        v.name: [
            d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim
        ]
        for v in (*inferred.graph.value_info, *inferred.graph.input)
    }
    producers = {o: n for n in model.graph.node for o in n.output}
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4:
            continue
        shape = dims.get(node.input[0], [])
        concat = producers.get(node.input[3])
        if len(shape) != 4 or min(shape[1:]) <= 0 or concat is None or concat.op_type != "Concat":
            continue
        target = initializers.get(concat.input[-1])
        if target is None or target.shape != (2,):
            continue
        if any(int(t) % s for t, s in zip(target, shape[2:], strict=True)):
            continue
        factors = np.asarray([1, 1, *(target // np.asarray(shape[2:]))], np.float32)
        scales = f"{node.name}/scales"
        model.graph.initializer.append(numpy_helper.from_array(factors, scales))
        node.input[:] = [node.input[0], "", scales]
    return model


def _with_output_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The outputs' shapes as ONNX shape inference finds them, then the full check."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    for output in model.graph.output:
        if output.name in known and known[output.name].type.tensor_type.HasField("shape"):
            output.type.CopyFrom(known[output.name].type)
    onnx.checker.check_model(model, full_check=True)
    return model
