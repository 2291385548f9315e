"""Making a published ONNX graph with a hard-coded batch of 1 take any batch, so Triton can
batch it (inswapper_128.onnx is such a graph: [1, 3, 128, 128] and [1, 512] in).

Two ways, tried in order, each kept only if ONNX Runtime shows it changes nothing:
1. rewrite the batch axis: dim 0 of every graph input and output becomes symbolic, stale
   intermediate shapes are dropped, and every Reshape of batch-dependent data whose target
   shape hard-codes 1 at axis 0 gets -1 (or 0, "copy", where -1 is taken) there. Cheap, and
   the batch then runs as one tensor through every convolution.
2. otherwise wrap the untouched batch-1 graph in a Scan over axis 0: always correct (each face
   runs through the original graph), one Triton execution per batch, but the faces of a batch
   run one after another inside it.
The check: a batch of 2 must equal its two items run one at a time, and each item must equal
what the original graph gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError
from export.spec import Array
from export.validate import CheckResult

BATCH_DIM = "batch"
ITEM_PREFIX = "item/"


@dataclass(frozen=True)
class Batched:
    model: onnx.ModelProto
    method: str  # "as published", "batch axis rewritten" or "scan over the batch-1 graph"
    changes: tuple[str, ...]
    checks: tuple[CheckResult, ...]


def _graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in initializers]


def _batch_is_dynamic(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def is_batch_dynamic(model: onnx.ModelProto) -> bool:
    """Every graph input and output has a symbolic (or unknown) first axis."""
    values = [*_graph_inputs(model.graph), *model.graph.output]
    return all(_batch_is_dynamic(v) for v in values)


def batch_dependent(graph: onnx.GraphProto) -> set[str]:
    """Every tensor computed from a graph input (nodes are in topological order in ONNX)."""
    reached = {i.name for i in _graph_inputs(graph)}
    for node in graph.node:
        if any(name in reached for name in node.input):
            reached.update(node.output)
    return reached


def _constants(graph: onnx.GraphProto, names: set[str]) -> dict[str, Array]:
    """The values of those `names` that are initializers or Constant outputs; only these are
    read (a published swapper holds half a gigabyte of initializers)."""
    found = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name in names}
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in names:
            for attribute in node.attribute:
                if attribute.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(attribute.t)
    return found


def _set_symbolic_batch(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value"):
        return False
    dims[0].ClearField("dim_value")
    dims[0].dim_param = BATCH_DIM
    return True


def rewrite_batch_axis(model: onnx.ModelProto) -> list[str]:
    """Strategy 1, in place; returns what was changed, for the manifest."""
    graph = model.graph
    changes = [
        f"{value.name}: axis 0 made '{BATCH_DIM}'"
        for value in (*_graph_inputs(graph), *graph.output)
        if _set_symbolic_batch(value)
    ]
    if graph.value_info:
        # Shapes recorded for batch 1 would contradict the graph at any other batch.
        changes.append(f"dropped {len(graph.value_info)} recorded intermediate shapes")
        del graph.value_info[:]
    dependent = batch_dependent(graph)
    reshapes = [n for n in graph.node if n.op_type == "Reshape" and n.input[0] in dependent]
    constants = _constants(graph, {n.input[1] for n in reshapes})
    for node in reshapes:
        shape = constants.get(node.input[1])
        allow_zero = any(a.name == "allowzero" and a.i == 1 for a in node.attribute)
        if shape is None or shape.ndim != 1 or shape.size == 0 or shape[0] != 1 or allow_zero:
            continue
        batched = shape.astype(np.int64)
        batched[0] = -1 if -1 not in shape else 0
        # A fresh initializer per node: the original may be shared with a Reshape that must
        # keep its 1 (one of data that does not depend on the batch).
        name = f"{node.input[1]}/batched/{node.output[0]}"
        graph.initializer.append(numpy_helper.from_array(batched, name))
        node.input[1] = name
        changes.append(
            f"Reshape {node.name or node.output[0]}: {shape.tolist()} → {batched.tolist()}"
        )
    return changes


def _renamed(names: list[str], mapping: dict[str, str]) -> list[str]:
    return [mapping.get(n, n) if n else n for n in names]


def wrap_in_scan(model: onnx.ModelProto) -> onnx.ModelProto:
    """Strategy 2: a new model running the original graph once per item of the batch."""
    graph = model.graph
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in graph.node
        for a in node.attribute
    ):
        raise ExportError("cannot wrap a graph that has subgraphs of its own in a Scan")
    inputs, outputs = _graph_inputs(graph), list(graph.output)
    # Subgraph names may not shadow the outer graph's: every inner name gets a prefix.
    inner = {n for node in graph.node for n in (*node.input, *node.output) if n}
    inner |= {i.name for i in graph.initializer} | {v.name for v in (*inputs, *outputs)}
    mapping = {name: ITEM_PREFIX + name for name in inner}
    axes = numpy_helper.from_array(np.array([0], np.int64), ITEM_PREFIX + "axis0")
    axes_as_input = _opset(model) >= 13  # before 13, Unsqueeze/Squeeze take an attribute
    nodes, body_inputs, body_outputs = [], [], []
    for value in inputs:
        item = helper.make_tensor_value_info(f"{mapping[value.name]}/slice", _dtype(value), None)
        body_inputs.append(item)
        nodes.append(_axis0_node("Unsqueeze", item.name, mapping[value.name], axes, axes_as_input))
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = _renamed(list(node.input), mapping)
        copy.output[:] = _renamed(list(node.output), mapping)
        nodes.append(copy)
    for value in outputs:
        item = helper.make_tensor_value_info(f"{mapping[value.name]}/slice", _dtype(value), None)
        body_outputs.append(item)
        nodes.append(_axis0_node("Squeeze", mapping[value.name], item.name, axes, axes_as_input))
    initializers = [axes] if axes_as_input else []
    for initializer in graph.initializer:
        moved = TensorProto()
        moved.CopyFrom(initializer)
        moved.name = mapping[initializer.name]
        initializers.append(moved)
    body = helper.make_graph(nodes, "item", body_inputs, body_outputs, initializer=initializers)
    scan = helper.make_node(
        "Scan",
        [v.name for v in inputs],
        [v.name for v in outputs],
        body=body,
        num_scan_inputs=len(inputs),
    )
    outer_inputs = [_with_batch(v) for v in inputs]
    outer_outputs = [_with_batch(v) for v in outputs]
    wrapped = helper.make_model(
        helper.make_graph([scan], graph.name or "scanned", outer_inputs, outer_outputs),
        opset_imports=list(model.opset_import),
    )
    wrapped.ir_version = model.ir_version
    wrapped.producer_name = "facet.export.onnx_batch"
    return wrapped


def _opset(model: onnx.ModelProto) -> int:
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _axis0_node(
    op: str, source: str, target: str, axes: TensorProto, axes_as_input: bool
) -> onnx.NodeProto:
    if axes_as_input:
        return helper.make_node(op, [source, axes.name], [target])
    return helper.make_node(op, [source], [target], axes=[0])


def _dtype(value: onnx.ValueInfoProto) -> int:
    return int(value.type.tensor_type.elem_type)


def _with_batch(value: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(value)
    _set_symbolic_batch(copy)
    return copy


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def batch_checks(
    original: onnx.ModelProto,
    batched: onnx.ModelProto,
    feeds: dict[str, Array],
    atol: float,
) -> list[CheckResult]:
    """A batch of several equals its items run one at a time, and each item equals what the
    original graph gives it."""
    items = next(iter(feeds.values())).shape[0]
    singles = [{k: v[i : i + 1] for k, v in feeds.items()} for i in range(items)]
    before, after = _session(original), _session(batched)
    outputs = [o.name for o in batched.graph.output]
    together = after.run(outputs, feeds)
    one_by_one = [after.run(outputs, single) for single in singles]
    reference = [before.run(outputs, single) for single in singles]
    label = f"batch of {items} vs its items one by one"
    results = []
    for index, output in enumerate(outputs):
        stacked = np.concatenate([run[index] for run in one_by_one])
        original_items = np.concatenate([run[index] for run in reference])
        results.append(
            _max_error("batched_vs_one_by_one", output, together[index], stacked, atol, label)
        )
        results.append(
            _max_error("batch_1_vs_published", output, stacked, original_items, atol, "each item")
        )
    return results


def _max_error(
    check: str, output: str, got: Array, want: Array, atol: float, label: str
) -> CheckResult:
    if got.shape != want.shape:
        detail = f"shape {got.shape} != {want.shape}"
        return CheckResult(check, output, "shape", float("nan"), atol, False, label, detail)
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    return CheckResult(check, output, "max_abs_error", error, atol, error <= atol, label)


def _passed(checks: list[CheckResult]) -> bool:
    return all(c.passed for c in checks)


def make_batchable(
    name: str, model: onnx.ModelProto, feeds: dict[str, Array], atol: float
) -> Batched:
    """The graph to serve with a dynamic batch: as published when it already batches, else
    the batch-axis rewrite, else the Scan wrapper; raises when none checks out."""
    if is_batch_dynamic(model):
        checks = batch_checks(model, model, feeds, atol)
        if _passed(checks):
            return Batched(model, "as published", (), tuple(checks))
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    changes = rewrite_batch_axis(rewritten)
    try:
        checks = batch_checks(model, rewritten, feeds, atol)
    except Exception as error:  # ORT refusing the rewritten graph is a failed strategy
        checks = [
            CheckResult(
                "batched_vs_one_by_one",
                "*",
                "run",
                float("nan"),
                atol,
                False,
                "batch of 2",
                f"{type(error).__name__}: {error}".splitlines()[0],
            )
        ]
    if _passed(checks):
        return Batched(rewritten, "batch axis rewritten", tuple(changes), tuple(checks))
    failed = "; ".join(
        f"{c.output}: {c.check} {c.detail or c.value}" for c in checks if not c.passed
    )
    scanned = wrap_in_scan(model)
    scan_checks = batch_checks(model, scanned, feeds, atol)
    if _passed(scan_checks):
        note = f"the batch-axis rewrite failed its check ({failed}); items run one by one"
        return Batched(scanned, "scan over the batch-1 graph", (note,), tuple(scan_checks))
    raise ExportError(f"{name}: the published graph cannot be made to take a batch ({failed})")
