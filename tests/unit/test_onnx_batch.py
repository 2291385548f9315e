"""Making a batch-1 ONNX graph take any batch (export/onnx_batch.py), on small graphs built here
that hard-code batch 1 the ways published graphs do, and through the official-ONNX install of
the swap models (tiny exports saved at batch 1 under upstream-style names stand in for
inswapper_128.onnx and w600k_r50.onnx, which this machine does not have)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError
from export.hashing import sha256_of
from export.models.arcface import ARCFACE_W600K_R50
from export.models.inswapper import INSWAPPER_128, validation_faces, validation_latents
from export.onnx_batch import (
    batch_dependent,
    is_batch_dynamic,
    make_batchable,
    rewrite_batch_axis,
    wrap_in_scan,
)
from export.pipeline import ExportOptions, export_any, rename_outputs
from export.spec import ModelSpec
from export.validate import open_session

IR_VERSION = 9  # what the pinned onnxruntime reads
RNG = np.random.default_rng(3)


def finish(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def constant(name: str, values: list[int] | np.ndarray) -> onnx.TensorProto:
    array = np.asarray(values)
    return numpy_helper.from_array(
        array.astype(array.dtype if array.dtype.kind == "f" else np.int64), name
    )


def reshaping_graph() -> onnx.ModelProto:
    """x [1,4,4,4], s [1,4] → y [1,4,4,4] through a flatten to [1, -1], a Reshape to
    [1, 4, 1, 1], and a bias reshaped by the same [1, -1] constant as x: batch-independent
    data that must keep its shape when the batch-dependent Reshape changes."""
    nodes = [
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["h"]),
        helper.make_node("Reshape", ["bias", "flat_shape"], ["bias_row"]),
        helper.make_node("Add", ["h", "bias_row"], ["h2"]),
        helper.make_node("Add", ["h2", "s"], ["z"]),
        helper.make_node("Reshape", ["z", "gain_shape"], ["gain"]),
        helper.make_node("Mul", ["x", "gain"], ["y"]),
    ]
    initializers = [
        constant("flat_shape", [1, -1]),
        constant("gain_shape", [1, 4, 1, 1]),
        numpy_helper.from_array(RNG.standard_normal((64, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "bias"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4]),
        helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 4]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])]
    graph = helper.make_graph(nodes, "reshaping", inputs, outputs, initializer=initializers)
    graph.value_info.append(helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, 64]))
    return finish(graph)


def first_item_graph(opset: int) -> onnx.ModelProto:
    """x [1,4] → the first item along axis 0, doubled: right at batch 1, and a rewrite of the
    batch axis alone would silently answer only the first item of a batch."""
    nodes = [
        helper.make_node("Slice", ["x", "zero", "one", "zero"], ["first"]),
        helper.make_node("Mul", ["first", "two"], ["y"]),
    ]
    initializers = [
        constant("zero", [0]),
        constant("one", [1]),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return finish(helper.make_graph(nodes, "first", [x], [y], initializer=initializers), opset)


def batch_feeds(model: onnx.ModelProto, batch: int = 3) -> dict[str, np.ndarray]:
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim][1:]
        feeds[value.name] = RNG.standard_normal((batch, *dims)).astype(np.float32)
    return feeds


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feeds)[0])


def one_by_one(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    items = next(iter(feeds.values())).shape[0]
    return np.concatenate(
        [run(model, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(items)]
    )


def test_only_tensors_computed_from_graph_inputs_depend_on_the_batch() -> None:
    dependent = batch_dependent(reshaping_graph().graph)
    assert {"flat", "h", "h2", "z", "gain", "y"} <= dependent
    assert "bias_row" not in dependent and "w" not in dependent


def test_the_rewrite_makes_the_batch_symbolic_and_fixes_batch_dependent_reshapes() -> None:
    model = reshaping_graph()
    original = onnx.ModelProto()
    original.CopyFrom(model)
    changes = rewrite_batch_axis(model)
    assert is_batch_dynamic(model) and not is_batch_dynamic(original)
    assert not model.graph.value_info
    shapes = {
        n.output[0]: numpy_helper.to_array(i).tolist()
        for n in model.graph.node
        if n.op_type == "Reshape"
        for i in model.graph.initializer
        if i.name == n.input[1]
    }
    assert shapes == {"flat": [0, -1], "gain": [-1, 4, 1, 1], "bias_row": [1, -1]}
    assert any("dropped 1 recorded intermediate shapes" in c for c in changes)
    feeds = batch_feeds(model)
    np.testing.assert_allclose(run(model, feeds), one_by_one(original, feeds), atol=1e-6)


def test_make_batchable_keeps_the_rewrite_when_it_checks_out() -> None:
    model = reshaping_graph()
    batched = make_batchable("reshaping", model, batch_feeds(model, 2), atol=1e-6)
    assert batched.method == "batch axis rewritten"
    assert batched.checks and all(c.passed for c in batched.checks)
    assert {c.check for c in batched.checks} == {"batched_vs_one_by_one", "batch_1_vs_published"}


@pytest.mark.parametrize("opset", [11, 17])
def test_a_graph_the_rewrite_cannot_fix_is_run_item_by_item_in_a_scan(opset: int) -> None:
    model = first_item_graph(opset)
    feeds = batch_feeds(model, 2)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    rewrite_batch_axis(rewritten)
    assert run(rewritten, feeds).shape == (1, 4)  # the silent failure the check must catch
    batched = make_batchable("first", model, feeds, atol=0.0)
    assert batched.method == "scan over the batch-1 graph"
    assert "rewrite failed its check" in batched.changes[0]
    onnx.checker.check_model(batched.model, full_check=True)
    np.testing.assert_array_equal(run(batched.model, feeds), feeds["x"] * 2)


def test_a_graph_that_already_batches_is_served_as_published() -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    model = finish(helper.make_graph([node], "relu", [x], [y]))
    batched = make_batchable(
        "relu", model, {"x": RNG.standard_normal((2, 4)).astype(np.float32)}, 0
    )
    assert batched.method == "as published" and batched.model is model


def test_scan_refuses_graphs_with_subgraphs() -> None:
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
    )
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)
    graph = helper.make_graph(
        [node],
        "branchy",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(ExportError, match="subgraphs"):
        wrap_in_scan(helper.make_model(graph))


def save_at_batch_1(
    spec: ModelSpec, path: Path, inputs: list[str], outputs: list[str], **kwargs: torch.Tensor
) -> None:
    """The tiny architecture with its synthetic weights, exported with a fixed batch of 1 and
    upstream-style tensor names, as insightface publishes its graphs."""
    model = spec.build_tiny().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            tuple(kwargs.values()),
            str(path),
            input_names=inputs,
            output_names=[f"out{i}" for i in range(len(outputs))],
            opset_version=11,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    rename_outputs(graph, outputs)  # numeric names such as '683', which torch refuses
    onnx.save(graph, str(path))


def install_official(spec: ModelSpec, tmp_path: Path, file: Path) -> tuple[ModelSpec, dict]:
    assert spec.official is not None
    official = dataclasses.replace(spec.official, sha256=sha256_of(file))
    pinned = dataclasses.replace(spec, official=official)
    options = ExportOptions(tmp_path / "repo", "auto", file.parent, True, False, False)
    outcome = export_any(pinned, options)
    return pinned, json.loads(outcome.manifest.read_text())


def test_a_batch_1_swapper_graph_is_installed_renamed_and_batched(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    file = weights / "inswapper_128.onnx"
    target = torch.from_numpy(validation_faces(1))
    source = torch.from_numpy(validation_latents(1))
    save_at_batch_1(INSWAPPER_128, file, ["in_target", "in_source"], ["output"], t=target, s=source)
    _, manifest = install_official(INSWAPPER_128, tmp_path, file)
    assert manifest["weights_kind"] == "official" and manifest["variant"] == "full"
    assert "batch: batch axis rewritten" in manifest["weights_detail"]
    assert "'output': 'swapped'" in manifest["weights_detail"]
    checks = {c["check"] for c in manifest["validation"]}
    assert {"batched_vs_one_by_one", "batch_1_vs_published", "onnxruntime_finite"} <= checks
    session = open_session(tmp_path / "repo" / "inswapper_128" / "1" / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["target", "source"]
    feeds = {"target": validation_faces(2), "source": validation_latents(2)}
    together = session.run(["swapped"], feeds)[0]
    apart = [
        session.run(["swapped"], {k: v[i : i + 1] for k, v in feeds.items()})[0] for i in (0, 1)
    ]
    np.testing.assert_allclose(together, np.concatenate(apart), atol=1e-5)


def test_the_official_arcface_graph_gets_the_served_names(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    file = weights / "w600k_r50.onnx"
    face = torch.rand(1, 3, 112, 112) * 2 - 1
    save_at_batch_1(ARCFACE_W600K_R50, file, ["input.1"], ["683"], face=face)
    _, manifest = install_official(ARCFACE_W600K_R50, tmp_path, file)
    assert "'input.1': 'face'" in manifest["weights_detail"]
    assert "'683': 'embedding'" in manifest["weights_detail"]
    session = open_session(tmp_path / "repo" / "arcface_w600k_r50" / "1" / "model.onnx")
    embeddings = session.run(["embedding"], {"face": np.zeros((3, 3, 112, 112), np.float32)})[0]
    assert embeddings.shape == (3, 512)
