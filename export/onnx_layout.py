"""Removing the layout transposes that a converted TensorFlow graph is full of.

A TF.js graph made from an ONNX model (onnx-tf) moves every convolution's input to NHWC and
its output back to NCHW; export.tfjs_onnx then wraps each TF image op in its own transposes
to ONNX's NCHW. Each rewrite below keeps the graph's values exactly (no arithmetic changes
order), and moving a transpose later only ever lets it meet its inverse:
- two transposes in a row become one, or none when they cancel;
- a transpose moves below an element-wise op (a constant operand is permuted to match), and
  below a Concat or a binary op whose inputs are all transposed the same way;
- a constant per-channel Add after a Conv becomes the Conv's bias, and a zero Pad of the
  spatial axes before a Conv becomes its padding;
- what nothing uses any more is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.spec import Array

UNARY = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Identity"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min"}


@dataclass
class _Graph:
    nodes: list[onnx.NodeProto]
    constants: dict[str, Array]
    outputs: set[str]
    rewrites: Counter[str] = field(default_factory=Counter)
    _fresh: int = 0
    _producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    _consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    def reindex(self) -> None:
        """Who produces and who reads each value; rules query it before they change nodes."""
        self._producers = {o: n for n in self.nodes for o in n.output}
        self._consumers = {}
        for node in self.nodes:
            for name in node.input:
                self._consumers.setdefault(name, []).append(node)

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self._producers.get(name)

    def only_used_by(self, name: str, node: onnx.NodeProto) -> bool:
        users = self._consumers.get(name, [])
        return name not in self.outputs and len(users) == 1 and users[0] is node

    def transpose_feeding(self, node: onnx.NodeProto, index: int) -> onnx.NodeProto | None:
        """The Transpose producing input `index` of `node`, if `node` is its only user."""
        source = self.producer(node.input[index])
        if source is None or source.op_type != "Transpose":
            return None
        return source if self.only_used_by(source.output[0], node) else None

    def fresh(self, base: str) -> str:
        self._fresh += 1
        return f"{base}/layout_{self._fresh}"

    def constant(self, value: Array, base: str) -> str:
        name = self.fresh(base)
        self.constants[name] = value
        return name

    def rename_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            node.input[:] = [new if n == old else n for n in node.input]


def _perm(node: onnx.NodeProto) -> list[int]:
    return list(helper.get_attribute_value(next(a for a in node.attribute if a.name == "perm")))


def _set_attr(node: onnx.NodeProto, name: str, value: object) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _compose(graph: _Graph, node: onnx.NodeProto) -> bool:
    """Transpose(Transpose(x, p1), p2) → Transpose(x, p1∘p2), or x when that is the identity."""
    if node.op_type != "Transpose":
        return False
    inner = graph.producer(node.input[0])
    if inner is None or inner.op_type != "Transpose":
        return False
    first, second = _perm(inner), _perm(node)
    composed = [first[axis] for axis in second]
    node.input[0] = inner.input[0]
    if composed == sorted(composed) and node.output[0] not in graph.outputs:
        graph.rename_uses(node.output[0], node.input[0])
        graph.nodes.remove(node)
        graph.rewrites["transposes cancelled"] += 1
    elif composed == sorted(composed):  # a graph output keeps its name: an Identity for now
        node.op_type = "Identity"
        del node.attribute[:]
        graph.rewrites["transposes cancelled"] += 1
    else:
        _set_attr(node, "perm", composed)
        graph.rewrites["transposes composed"] += 1
    return True


def _move_below(graph: _Graph, node: onnx.NodeProto, perm: list[int]) -> None:
    """`node` now computes in the transposes' input layout: put one Transpose after it."""
    result = node.output[0]
    inner = graph.fresh(result)
    node.output[0] = inner
    after = helper.make_node("Transpose", [inner], [result], name=graph.fresh(node.name), perm=perm)
    graph.nodes.insert(graph.nodes.index(node) + 1, after)
    graph.rewrites[f"transpose moved below {node.op_type}"] += 1


def _sink_unary(graph: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type not in UNARY and not _is_clip_of_constants(graph, node):
        return False
    source = graph.transpose_feeding(node, 0)
    if source is None:
        return False
    node.input[0] = source.input[0]
    _move_below(graph, node, _perm(source))
    return True


def _is_clip_of_constants(graph: _Graph, node: onnx.NodeProto) -> bool:
    return node.op_type == "Clip" and all(n in graph.constants for n in node.input[1:] if n)


def _permuted_constant(value: Array, perm: list[int]) -> Array:
    """c' such that Transpose(c', perm) broadcasts like c: c at the full rank, permuted by the
    inverse of `perm`."""
    full = value.reshape((1,) * (len(perm) - value.ndim) + value.shape)
    return np.ascontiguousarray(np.transpose(full, np.argsort(perm)))


def _sink_binary(graph: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type not in BINARY or len(node.input) != 2:
        return False
    sources = [graph.transpose_feeding(node, i) for i in range(2)]
    if all(sources) and _perm(sources[0]) == _perm(sources[1]):  # type: ignore[arg-type]
        perm = _perm(sources[0])  # type: ignore[arg-type]
        node.input[:] = [s.input[0] for s in sources]  # type: ignore[union-attr]
        _move_below(graph, node, perm)
        return True
    for index, source in enumerate(sources):
        other = node.input[1 - index]
        if source is None or other not in graph.constants:
            continue
        perm = _perm(source)
        if graph.constants[other].ndim > len(perm):
            return False
        node.input[1 - index] = graph.constant(
            _permuted_constant(graph.constants[other], perm), other
        )
        node.input[index] = source.input[0]
        _move_below(graph, node, perm)
        return True
    return False


def _sink_concat(graph: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type != "Concat":
        return False
    sources = [graph.transpose_feeding(node, i) for i in range(len(node.input))]
    if not all(sources):
        return False
    perms = {tuple(_perm(s)) for s in sources if s is not None}
    if len(perms) != 1:
        return False
    perm = list(perms.pop())
    axis = int(_attr(node, "axis"))  # type: ignore[call-overload]
    _set_attr(node, "axis", perm[axis % len(perm)])
    node.input[:] = [s.input[0] for s in sources if s is not None]
    _move_below(graph, node, perm)
    return True


def _conv_bias(graph: _Graph, node: onnx.NodeProto) -> bool:
    """Conv → Add(constant [C, 1, 1]) becomes the Conv's bias."""
    if node.op_type != "Add":
        return False
    for index in range(2):
        conv, other = graph.producer(node.input[index]), node.input[1 - index]
        if conv is None or conv.op_type != "Conv" or other not in graph.constants:
            continue
        if not graph.only_used_by(conv.output[0], node):
            continue
        channels = int(graph.constants[conv.input[1]].shape[0])
        bias = graph.constants[other]
        if bias.size != channels or bias.ndim < 3 or bias.shape[-2:] != (1, 1):
            continue
        total = bias.reshape(channels)
        if len(conv.input) > 2:
            total = total + graph.constants[conv.input[2]]
        name = graph.constant(total.astype(bias.dtype), f"{conv.name}/bias")
        conv.input[:] = [*conv.input[:2], name]
        conv.output[0] = node.output[0]
        graph.nodes.remove(node)
        graph.rewrites["Add folded into Conv bias"] += 1
        return True
    return False


def _pad_conv(graph: _Graph, node: onnx.NodeProto) -> bool:
    """Pad(zeros on H, W only) → Conv with explicit pads becomes the Conv's padding."""
    if node.op_type != "Conv" or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return False
    pad = graph.producer(node.input[0])
    if pad is None or pad.op_type != "Pad" or not graph.only_used_by(pad.output[0], node):
        return False
    if _attr(pad, "mode", b"constant") not in (b"constant", "constant"):
        return False
    if pad.input[1] not in graph.constants:
        return False
    fill = pad.input[2] if len(pad.input) > 2 else ""
    if fill and (fill not in graph.constants or graph.constants[fill].any()):
        return False
    amounts = graph.constants[pad.input[1]].reshape(2, -1)
    if amounts.shape[1] != 4 or amounts[:, :2].any() or (amounts < 0).any():
        return False
    current = list(_attr(node, "pads", [0, 0, 0, 0]))  # type: ignore[call-overload]
    begins, ends = amounts[0, 2:], amounts[1, 2:]
    added = [int(v) for v in (*begins, *ends)]
    _set_attr(node, "pads", [a + b for a, b in zip(current, added, strict=True)])
    node.input[0] = pad.input[0]
    graph.rewrites["Pad folded into Conv padding"] += 1
    return True


def _drop_identity(graph: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type != "Identity" or node.output[0] in graph.outputs:
        return False
    graph.rename_uses(node.output[0], node.input[0])
    graph.nodes.remove(node)
    graph.rewrites["Identity dropped"] += 1
    return True


def _absorb_output_identity(graph: _Graph, node: onnx.NodeProto) -> bool:
    """x → Identity → graph output: the node computing x writes the output itself."""
    if node.op_type != "Identity" or node.output[0] not in graph.outputs:
        return False
    source = graph.producer(node.input[0])
    if source is None or not graph.only_used_by(node.input[0], node):
        return False
    source.output[list(source.output).index(node.input[0])] = node.output[0]
    graph.nodes.remove(node)
    graph.rewrites["Identity dropped"] += 1
    return True


RULES: tuple[Callable[[_Graph, onnx.NodeProto], bool], ...] = (
    _drop_identity,
    _absorb_output_identity,
    _compose,
    _sink_unary,
    _sink_binary,
    _sink_concat,
    _conv_bias,
    _pad_conv,
)


def _drop_unused(graph: _Graph) -> None:
    while True:
        used = set(graph.outputs) | {n for node in graph.nodes for n in node.input}
        dead = [node for node in graph.nodes if not any(o in used for o in node.output)]
        if not dead:
            break
        for node in dead:
            graph.nodes.remove(node)
    used = {n for node in graph.nodes for n in node.input}
    for name in [n for n in graph.constants if n not in used]:
        del graph.constants[name]


def _apply_one(graph: _Graph) -> bool:
    graph.reindex()
    for node in list(graph.nodes):
        for rule in RULES:
            if rule(graph, node):
                _drop_unused(graph)
                return True
    return False


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """A copy of `model` with its layout transposes cancelled, and what was rewritten."""
    source = model.graph
    graph = _Graph(
        nodes=[_copy(n) for n in source.node],
        constants={i.name: numpy_helper.to_array(i) for i in source.initializer},
        outputs={o.name for o in source.output},
    )
    _drop_unused(graph)
    while _apply_one(graph):
        pass
    rebuilt = helper.make_graph(
        graph.nodes,
        source.name,
        list(source.input),
        list(source.output),
        initializer=[numpy_helper.from_array(v, k) for k, v in graph.constants.items()],
    )
    result = helper.make_model(rebuilt, opset_imports=list(model.opset_import))
    result.ir_version = model.ir_version
    result.producer_name = model.producer_name
    return result, dict(graph.rewrites)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def drop_unused_initializers(model: onnx.ModelProto) -> int:
    """Remove, in place, the initializers no node reads (e.g. the shapes a batch rewrite
    replaced); returns how many."""
    used = {name for node in model.graph.node for name in node.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for initializer in unused:
        model.graph.initializer.remove(initializer)
    return len(unused)
