"""The TF.js → ONNX converter, op by op, on tiny hand-written TF.js graphs run by ONNX Runtime
and compared with numpy written from TensorFlow's semantics (tests/unit/tfjs_fixtures.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from export.errors import ConversionError
from export.tfjs_onnx import SUPPORTED, UnsupportedOpsError
from tests.unit import tfjs_fixtures as tf
from tests.unit.tfjs_fixtures import TfjsModel, convert_and_run

RNG = np.random.default_rng(7)
ATOL = 1e-4


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ops(converted) -> Counter:
    return Counter(n.op_type for n in converted.model.graph.node)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"),
    [(1, "VALID", 1), (2, "SAME", 1), (1, "SAME", 2), (2, "EXPLICIT", 1)],
)
def test_conv2d_matches_tensorflow_padding_strides_and_dilations(
    tmp_path, stride, padding, dilation
) -> None:
    x, w = _x(1, 9, 8, 3), _x(3, 3, 3, 4)
    model = TfjsModel(x.shape)
    model.const("w", w)
    explicit = [0, 0, 1, 2, 2, 0, 0, 0]  # NHWC pairs: top 1, bottom 2, left 2, right 0
    extra = {"explicit_paddings": explicit} if padding == "EXPLICIT" else {}
    model.op(
        "conv",
        "Conv2D",
        ["x", "w"],
        strides=[1, stride, stride, 1],
        padding=padding,
        dilations=[1, dilation, dilation, 1],
        data_format="NHWC",
        **extra,
    )
    (got,), converted = convert_and_run(model, tmp_path, ["conv:0"], x)
    pads = (1, 2, 2, 0) if padding == "EXPLICIT" else padding
    np.testing.assert_allclose(got, tf.conv2d(x, w, stride, pads, dilation), atol=ATOL)
    assert _ops(converted)["Transpose"] == 2  # in and out of NCHW, nothing else


def test_conv2d_in_nchw_needs_no_transposes(tmp_path) -> None:
    x, w = _x(2, 3, 6, 6), _x(3, 3, 3, 5)
    model = TfjsModel(x.shape)
    model.const("w", w)
    model.op("conv", "Conv2D", ["x", "w"], strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW")
    (got,), converted = convert_and_run(model, tmp_path, ["conv:0"], x)
    want = tf.conv2d(x.transpose(0, 2, 3, 1), w, 1, "SAME").transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, atol=ATOL)
    assert "Transpose" not in _ops(converted)


def test_depthwise_conv_orders_channels_as_tensorflow_does(tmp_path) -> None:
    x, w = _x(1, 7, 7, 3), _x(3, 3, 3, 2)  # channel multiplier 2
    model = TfjsModel(x.shape)
    model.const("w", w)
    model.op("dw", "DepthwiseConv2dNative", ["x", "w"], strides=[1, 2, 2, 1], padding="SAME")
    (got,), _ = convert_and_run(model, tmp_path, ["dw:0"], x)
    np.testing.assert_allclose(got, tf.conv2d(x, w, 2, "SAME", depthwise=True), atol=ATOL)


@pytest.mark.parametrize("op", ["_FusedConv2D", "FusedConv2D"])
@pytest.mark.parametrize("activation", ["Relu", "Relu6", "LeakyRelu", "Elu", "Sigmoid", "Prelu"])
def test_fused_conv2d_adds_the_bias_then_the_activation(tmp_path, op, activation) -> None:
    x, w, b = _x(1, 5, 5, 2), _x(3, 3, 2, 3) * 3, _x(3)
    alpha = np.array([0.1, 0.2, 0.3], np.float32)
    model = TfjsModel(x.shape)
    model.const("w", w)
    model.const("b", b)
    args = ["b"]
    if activation == "Prelu":
        model.const("alpha", alpha)
        args.append("alpha")
    model.op(
        "fused",
        op,
        ["x", "w", *args],
        strides=[1, 1, 1, 1],
        padding="SAME",
        fused_ops=["BiasAdd", activation],
        num_args=len(args),
        leakyrelu_alpha=0.3,
    )
    (got,), _ = convert_and_run(model, tmp_path, ["fused:0"], x)
    z = tf.conv2d(x, w, 1, "SAME") + b
    want = {
        "Relu": np.maximum(z, 0),
        "Relu6": np.clip(z, 0, 6),
        "LeakyRelu": np.where(z > 0, z, 0.3 * z),
        "Elu": np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        "Sigmoid": 1 / (1 + np.exp(-z)),
        "Prelu": np.where(z > 0, z, alpha * z),
    }[activation]
    np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.parametrize("op", ["FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"])
def test_fused_depthwise_conv_with_bias_only(tmp_path, op) -> None:
    x, w, b = _x(1, 6, 6, 2), _x(3, 3, 2, 1), _x(2)
    model = TfjsModel(x.shape)
    model.const("w", w)
    model.const("b", b)
    model.op(
        "fused",
        op,
        ["x", "w", "b"],
        strides=[1, 1, 1, 1],
        padding="VALID",
        fused_ops=["BiasAdd"],
        num_args=1,
    )
    (got,), _ = convert_and_run(model, tmp_path, ["fused:0"], x)
    np.testing.assert_allclose(got, tf.conv2d(x, w, 1, "VALID", depthwise=True) + b, atol=ATOL)


def test_fused_batch_norm_is_refused_by_name(tmp_path) -> None:
    model = TfjsModel((1, 4, 4, 1))
    model.const("w", _x(1, 1, 1, 1))
    model.const("b", _x(1))
    model.op(
        "fused",
        "_FusedConv2D",
        ["x", "w", "b"],
        strides=[1, 1, 1, 1],
        padding="VALID",
        fused_ops=["FusedBatchNorm"],
        num_args=1,
    )
    with pytest.raises(ConversionError, match="FusedBatchNorm"):
        convert_and_run(model, tmp_path, ["fused:0"], _x(1, 4, 4, 1))


@pytest.mark.parametrize(
    ("op", "reference"),
    [
        ("Add", np.add),
        ("AddV2", np.add),
        ("Sub", np.subtract),
        ("Mul", np.multiply),
        ("RealDiv", np.divide),
        ("Maximum", np.maximum),
        ("Minimum", np.minimum),
    ],
)
def test_binary_ops_broadcast_a_constant_on_either_side(tmp_path, op, reference) -> None:
    x = _x(2, 3, 4)
    c = (np.abs(_x(4)) + 0.5).astype(np.float32)
    model = TfjsModel(x.shape)
    model.const("c", c)
    model.op("left", op, ["c", "x"])
    model.op("right", op, ["x", "c"])
    model.op("both", op, ["left", "right"])
    (left, right, both), _ = convert_and_run(model, tmp_path, ["left:0", "right:0", "both:0"], x)
    np.testing.assert_allclose(left, reference(c, x), rtol=1e-5, atol=ATOL)
    np.testing.assert_allclose(right, reference(x, c), rtol=1e-5, atol=ATOL)
    np.testing.assert_allclose(both, reference(reference(c, x), reference(x, c)), rtol=1e-5)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_bias_add_follows_the_data_format(tmp_path, data_format) -> None:
    x, b = _x(1, 3, 4, 3), _x(3)
    model = TfjsModel(x.shape)
    model.const("b", b)
    model.op("y", "BiasAdd", ["x", "b"], data_format=data_format)
    (got,), _ = convert_and_run(model, tmp_path, ["y:0"], x)
    want = x + b if data_format == "NHWC" else x + b.reshape(3, 1, 1)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_activations_and_softmax(tmp_path) -> None:
    x = _x(2, 5) * 4
    model = TfjsModel(x.shape)
    for op in ("Relu", "Relu6", "Sigmoid", "Tanh", "Elu", "Softmax"):
        model.op(op.lower(), op, ["x"])
    model.op("leaky", "LeakyRelu", ["x"], alpha=0.1)
    model.op("same", "Identity", ["relu"])
    names = ["relu", "relu6", "sigmoid", "tanh", "elu", "softmax", "leaky", "same"]
    got, _ = convert_and_run(model, tmp_path, [f"{n}:0" for n in names], x)
    exp = np.exp(x - x.max(axis=-1, keepdims=True))
    want = [
        np.maximum(x, 0),
        np.clip(x, 0, 6),
        1 / (1 + np.exp(-x)),
        np.tanh(x),
        np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        exp / exp.sum(axis=-1, keepdims=True),
        np.where(x > 0, x, 0.1 * x),
        np.maximum(x, 0),
    ]
    for name, g, w in zip(names, got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=name)


def test_concat_both_spellings_and_shape_ops(tmp_path) -> None:
    x = _x(2, 3, 4)
    model = TfjsModel(x.shape)
    model.const("axis", np.array(1, np.int32))
    model.op("cat2", "ConcatV2", ["x", "x", "axis"], N=2)
    model.op("cat1", "Concat", ["axis", "x", "x"], N=2)
    model.const("shape", np.array([2, -1], np.int32))
    model.op("flat", "Reshape", ["x", "shape"])
    model.const("perm", np.array([2, 0, 1], np.int32))
    model.op("moved", "Transpose", ["x", "perm"])
    model.const("dim", np.array(-1, np.int32))
    model.op("expanded", "ExpandDims", ["x", "dim"])
    model.op("squeezed", "Squeeze", ["expanded"], squeeze_dims=[3])
    names = ["cat2", "cat1", "flat", "moved", "expanded", "squeezed"]
    got, _ = convert_and_run(model, tmp_path, [f"{n}:0" for n in names], x)
    want = [
        np.concatenate([x, x], 1),
        np.concatenate([x, x], 1),
        x.reshape(2, -1),
        x.transpose(2, 0, 1),
        x[..., None],
        x,
    ]
    for name, g, w in zip(names, got, want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=name)


def test_split_and_split_v_give_every_output(tmp_path) -> None:
    x = _x(2, 6, 3)
    model = TfjsModel(x.shape)
    model.const("axis", np.array(1, np.int32))
    model.op("even", "Split", ["axis", "x"], num_split=3)
    model.const("sizes", np.array([1, 5], np.int32))
    model.op("uneven", "SplitV", ["x", "sizes", "axis"], num_split=2)
    outputs = ["even:0", "even:2", "uneven:0", "uneven:1"]
    got, _ = convert_and_run(model, tmp_path, outputs, x)
    want = [x[:, 0:2], x[:, 4:6], x[:, :1], x[:, 1:]]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_pads_with_zeros_a_value_or_a_reflection(tmp_path) -> None:
    x = _x(1, 3, 4, 2)
    pads = np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32)
    model = TfjsModel(x.shape)
    model.const("pads", pads)
    model.const("value", np.array(-7.0, np.float32))
    model.op("zero", "Pad", ["x", "pads"])
    model.op("filled", "PadV2", ["x", "pads", "value"])
    model.op("mirror", "MirrorPad", ["x", "pads"], mode="REFLECT")
    got, _ = convert_and_run(model, tmp_path, ["zero:0", "filled:0", "mirror:0"], x)
    np.testing.assert_array_equal(got[0], np.pad(x, pads))
    np.testing.assert_array_equal(got[1], np.pad(x, pads, constant_values=-7.0))
    np.testing.assert_array_equal(got[2], np.pad(x, pads, mode="reflect"))


def test_symmetric_mirror_padding_has_no_onnx_mode_and_is_refused(tmp_path) -> None:
    model = TfjsModel((1, 3, 3, 1))
    model.const("pads", np.ones((4, 2), np.int32))
    model.op("mirror", "MirrorPad", ["x", "pads"], mode="SYMMETRIC")
    with pytest.raises(ConversionError, match="SYMMETRIC"):
        convert_and_run(model, tmp_path, ["mirror:0"], _x(1, 3, 3, 1))


@pytest.mark.parametrize(("op", "kind"), [("MaxPool", "max"), ("AvgPool", "average")])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_pooling_ignores_the_padding_as_tensorflow_does(tmp_path, op, kind, padding) -> None:
    x = _x(1, 7, 6, 2)
    model = TfjsModel(x.shape)
    model.op("pool", op, ["x"], ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding=padding)
    (got,), _ = convert_and_run(model, tmp_path, ["pool:0"], x)
    np.testing.assert_allclose(got, tf.pool(x, 3, 2, padding, kind), atol=1e-6)


RESIZE_MODES = [(False, True), (True, False), (False, False)]  # (align_corners, half_pixel)


@pytest.mark.parametrize(("align", "half"), RESIZE_MODES, ids=["half_pixel", "align", "legacy"])
@pytest.mark.parametrize("size", [(8, 10), (3, 2), (7, 9)], ids=["up", "down", "odd"])
def test_resize_bilinear_matches_tensorflow_in_each_mode(tmp_path, align, half, size) -> None:
    x = _x(2, 4, 5, 3)
    model = TfjsModel((-1, 4, 5, 3))
    model.const("size", np.array(size, np.int32))
    model.op("y", "ResizeBilinear", ["x", "size"], align_corners=align, half_pixel_centers=half)
    (got,), _ = convert_and_run(model, tmp_path, ["y:0"], x)
    np.testing.assert_allclose(got, tf.resize_bilinear(x, size, align, half), atol=1e-5)


@pytest.mark.parametrize(("align", "half"), RESIZE_MODES, ids=["half_pixel", "align", "legacy"])
@pytest.mark.parametrize("size", [(8, 10), (3, 2), (7, 9)], ids=["up", "down", "odd"])
def test_resize_nearest_matches_tensorflow_in_each_mode(tmp_path, align, half, size) -> None:
    x = _x(1, 4, 5, 2)
    model = TfjsModel(x.shape)
    model.const("size", np.array(size, np.int32))
    model.op(
        "y", "ResizeNearestNeighbor", ["x", "size"], align_corners=align, half_pixel_centers=half
    )
    (got,), _ = convert_and_run(model, tmp_path, ["y:0"], x)
    np.testing.assert_array_equal(got, tf.resize_nearest(x, size, align, half))


def test_an_exact_upsampling_of_a_known_size_becomes_constant_scales(tmp_path) -> None:
    x = _x(1, 4, 5, 3)
    model = TfjsModel(x.shape)
    model.const("size", np.array([8, 10], np.int32))
    model.op("y", "ResizeBilinear", ["x", "size"], half_pixel_centers=True)
    (got,), converted = convert_and_run(model, tmp_path, ["y:0"], x)
    np.testing.assert_allclose(got, tf.resize_bilinear(x, (8, 10), False, True), atol=1e-5)
    assert "Shape" not in _ops(converted)
    dims = [d.dim_value for d in converted.model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 8, 10, 3]


def test_cast(tmp_path) -> None:
    x = _x(3, 2) * 5
    model = TfjsModel(x.shape)
    model.op("y", "Cast", ["x"], DstT="DT_INT32")
    (got,), _ = convert_and_run(model, tmp_path, ["y:0"], x)
    np.testing.assert_array_equal(got, x.astype(np.int32))


def test_shape_arithmetic_over_constants_is_folded_away(tmp_path) -> None:
    """The pattern onnx-tf leaves in front of a Reshape (NanoDet has six): SparseToDense on
    empty indices, plus a constant, as the target shape."""
    x = _x(1, 4, 6)
    model = TfjsModel(x.shape)
    model.const("where", np.zeros((0, 1), np.int32), "DT_INT64")
    model.const("length", np.array([3], np.int32), "DT_INT64")
    model.const("values", np.zeros((0,), np.int32), "DT_INT64")
    model.const("zero", np.array(0, np.int32), "DT_INT64")
    model.op("dense", "SparseToDense", ["where", "length", "values", "zero"], T="DT_INT64")
    model.const("base", np.array([1, 6, 4], np.int32), "DT_INT64")
    model.op("shape", "AddV2", ["base", "dense"], T="DT_INT64")
    model.op("y", "Reshape", ["x", "shape"])
    (got,), converted = convert_and_run(model, tmp_path, ["y:0"], x)
    np.testing.assert_array_equal(got, x.reshape(1, 6, 4))
    assert converted.folded == 2 and _ops(converted) == Counter({"Reshape": 1})


def test_sparse_to_dense_of_a_computed_tensor_is_refused(tmp_path) -> None:
    model = TfjsModel((2, 1), dtype="DT_INT32")
    model.const("shape", np.array([4], np.int32))
    model.const("value", np.array(1, np.int32))
    model.const("zero", np.array(0, np.int32))
    model.op("dense", "SparseToDense", ["x", "shape", "value", "zero"])
    with pytest.raises(ConversionError, match="SparseToDense dense: only supported on constant"):
        convert_and_run(model, tmp_path, ["dense:0"], np.zeros((2, 1), np.int32))


def test_unknown_ops_are_refused_naming_every_one_of_them(tmp_path) -> None:
    model = TfjsModel((2, 3))
    model.op("a", "Erf", ["x"])
    model.const("w", _x(3, 3))
    model.op("b", "MatMul", ["a", "w"])
    model.op("c", "Relu", ["b"])
    with pytest.raises(UnsupportedOpsError) as raised:
        convert_and_run(model, tmp_path, ["c:0"], _x(2, 3))
    assert raised.value.ops == {"Erf": "a", "MatMul": "b"}
    assert "Erf (e.g. node 'a')" in str(raised.value) and "MatMul" in str(raised.value)


def test_nodes_no_output_needs_are_not_converted(tmp_path) -> None:
    model = TfjsModel((2, 3))
    model.op("unused", "Erf", ["x"])  # unknown, but dead
    model.op("y", "Relu", ["x"])
    (got,), _ = convert_and_run(model, tmp_path, ["y:0"], np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(got, np.ones((2, 3)))


def test_a_dynamic_batch_stays_dynamic(tmp_path) -> None:
    x, w = _x(3, 6, 6, 2), _x(3, 3, 2, 4)
    model = TfjsModel((-1, 6, 6, 2))
    model.const("w", w)
    model.op("conv", "Conv2D", ["x", "w"], strides=[1, 1, 1, 1], padding="SAME")
    (got,), converted = convert_and_run(model, tmp_path, ["conv:0"], x)
    np.testing.assert_allclose(got, tf.conv2d(x, w, 1, "SAME"), atol=ATOL)
    assert converted.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param


def test_an_onnx_tf_layout_sandwich_becomes_a_plain_nchw_graph(tmp_path) -> None:
    """What onnx-tf writes for Conv → LeakyRelu on NCHW data (NanoDet's every layer): pad in
    NCHW, transpose to NHWC, convolve, add the bias, transpose back. The converted graph
    keeps only the Conv (bias and padding folded in) and the activation."""
    x, w, b = _x(1, 3, 6, 6), _x(3, 3, 3, 4), _x(4)
    model = TfjsModel(x.shape)
    model.const("pads", np.array([[0, 0], [0, 0], [1, 1], [1, 1]], np.int32))
    model.const("to_nhwc", np.array([0, 2, 3, 1], np.int32))
    model.const("to_nchw", np.array([0, 3, 1, 2], np.int32))
    model.const("w", w)
    model.const("b", b)
    model.op("pad", "Pad", ["x", "pads"])
    model.op("nhwc", "Transpose", ["pad", "to_nhwc"])
    model.op("conv", "Conv2D", ["nhwc", "w"], strides=[1, 1, 1, 1], padding="VALID")
    model.op("bias", "Add", ["conv", "b"])
    model.op("nchw", "Transpose", ["bias", "to_nchw"])
    model.op("act", "LeakyRelu", ["nchw"], alpha=0.1)
    (got,), converted = convert_and_run(model, tmp_path, ["act:0"], x)
    z = tf.conv2d(x.transpose(0, 2, 3, 1), w, 1, "SAME") + b
    np.testing.assert_allclose(got, np.where(z > 0, z, 0.1 * z).transpose(0, 3, 1, 2), atol=ATOL)
    assert _ops(converted) == Counter({"Conv": 1, "LeakyRelu": 1})
    assert converted.rewrites["Pad folded into Conv padding"] == 1
    assert converted.rewrites["Add folded into Conv bias"] == 1


def test_the_outputs_must_all_be_named(tmp_path) -> None:
    model = TfjsModel((2,))
    model.op("y", "Relu", ["x"])
    path = model.write(tmp_path, ["y:0"])
    from export.tfjs_model import read_model
    from export.tfjs_onnx import convert

    with pytest.raises(ConversionError, match="ONNX names were given"):
        convert(read_model(path), {"x": "input"}, {"z:0": "out"})


def test_every_op_the_converter_claims_has_a_test_here() -> None:
    tested = {
        "Const", "Placeholder", "Identity", "Conv2D", "DepthwiseConv2dNative", "FusedConv2D",
        "_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", "BiasAdd",
        "Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Relu", "Relu6",
        "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Softmax", "Cast", "ConcatV2", "Concat",
        "Reshape", "Transpose", "Squeeze", "ExpandDims", "Split", "SplitV", "Pad", "PadV2",
        "MirrorPad", "MaxPool", "AvgPool", "ResizeBilinear", "ResizeNearestNeighbor",
        "SparseToDense",
    }  # fmt: skip
    assert tested == set(SUPPORTED)
