"""The layout simplification (export/onnx_layout.py): each rewrite keeps every output's value."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.onnx_layout import drop_unused_initializers, simplify

RNG = np.random.default_rng(11)
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


def _model(
    nodes: list[onnx.NodeProto],
    outputs: list[str],
    constants: dict[str, np.ndarray] | None = None,
    shape: tuple[int, ...] = (2, 3, 4, 5),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (constants or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _same_values(
    model: onnx.ModelProto, shape: tuple[int, ...] = (2, 3, 4, 5)
) -> tuple[Counter[str], dict[str, int]]:
    x = RNG.standard_normal(shape).astype(np.float32)
    simplified, rewrites = simplify(model)
    for before, after in zip(_run(model, x), _run(simplified, x), strict=True):
        np.testing.assert_array_equal(before, after)
    return Counter(n.op_type for n in simplified.graph.node), rewrites


def test_a_transpose_moves_below_a_constant_operand_on_either_side_and_cancels() -> None:
    c = RNG.standard_normal((5,)).astype(np.float32)  # broadcast over the NHWC channel axis
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=TO_NHWC),
        helper.make_node("Sub", ["c", "t"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=TO_NCHW),
    ]
    ops, rewrites = _same_values(_model(nodes, ["y"], {"c": c}, shape=(2, 5, 4, 3)), (2, 5, 4, 3))
    assert ops == Counter({"Sub": 1, "Relu": 1})
    assert rewrites["transposes cancelled"] == 1


def test_a_concat_of_equally_transposed_inputs_concatenates_on_the_permuted_axis() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=TO_NHWC),
        helper.make_node("Sigmoid", ["x"], ["xs"]),
        helper.make_node("Transpose", ["xs"], ["b"], perm=TO_NHWC),
        helper.make_node("Concat", ["a", "b"], ["c"], axis=-1),
        helper.make_node("Transpose", ["c"], ["y"], perm=TO_NCHW),
    ]
    ops, _ = _same_values(_model(nodes, ["y"]))
    assert ops == Counter({"Sigmoid": 1, "Concat": 1})


def test_a_transpose_read_twice_or_producing_an_output_stays() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=TO_NHWC),
        helper.make_node("Relu", ["t"], ["a"]),
        helper.make_node("Tanh", ["t"], ["b"]),
        helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2]),
    ]
    ops, rewrites = _same_values(_model(nodes, ["a", "b", "y"]))
    assert ops["Transpose"] == 2 and not rewrites


def test_two_transposes_in_a_row_become_one() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=TO_NHWC),
        helper.make_node("Transpose", ["t"], ["y"], perm=[0, 2, 1, 3]),
    ]
    ops, rewrites = _same_values(_model(nodes, ["y"]))
    assert ops == Counter({"Transpose": 1}) and rewrites["transposes composed"] == 1


def test_a_conv_takes_a_following_channel_add_as_bias_and_a_zero_pad_as_padding() -> None:
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal((1, 4, 1, 1)).astype(np.float32)
    pads = np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64)
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Conv", ["p", "w"], ["c"], kernel_shape=[3, 3], pads=[0, 0, 0, 0]),
        helper.make_node("Add", ["c", "b"], ["y"]),
    ]
    model = _model(nodes, ["y"], {"w": w, "b": b, "pads": pads}, shape=(1, 3, 6, 6))
    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    simplified, _ = simplify(model)
    np.testing.assert_allclose(_run(simplified, x)[0], _run(model, x)[0], atol=1e-5)
    (conv,) = simplified.graph.node
    assert conv.op_type == "Conv" and len(conv.input) == 3
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [1, 2, 1, 0]


def test_unused_initializers_are_dropped() -> None:
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])], ["y"], {"stale": np.ones(3, np.float32)}
    )
    assert drop_unused_initializers(model) == 1 and not model.graph.initializer
