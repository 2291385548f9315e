"""Fixtures that run a real tritonserver on tiny ONNX models built with onnx.helper."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.pipeline import ExportOptions
from export.repository import build_repository as assemble_repository
from serving.launcher import TritonServer, TritonSettings, free_ports

StartTriton = Callable[..., TritonServer]

SR_MODELS = ["realesrgan_x4plus", "realesr_general_x4v3"]

OPSET = 17
IR_VERSION = 9  # onnx may write a newer IR than the pinned onnxruntime accepts
SLOW_MATMULS = 40  # 512x512 each: ~0.1 s per request on one fast core, longer on CI

IMAGE_SCALE_CONFIG = """
backend: "facet_ort"
max_batch_size: 8
input [ { name: "image" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] } ]
output [ { name: "scaled" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
"""

SLOW_MATMUL_CONFIG = """
backend: "facet_ort"
max_batch_size: 1
input [ { name: "x" data_type: TYPE_FP32 dims: [ 512, 512 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 512, 512 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { default_queue_policy { max_queue_size: 1 } }
"""

LOOKUP_CONFIG = """
backend: "facet_ort"
max_batch_size: 8
input [ { name: "index" data_type: TYPE_INT64 dims: [ 1 ] } ]
output [ { name: "value" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
parameters { key: "intra_op_thread_count" value: { string_value: "1" } }
"""

LOOKUP_TABLE = np.array([10.0, 20.0, 30.0, 40.0], dtype=np.float32)


def finish_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    """Wrap a graph as a checked model that the pinned onnxruntime can load."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def build_image_scale_model() -> onnx.ModelProto:
    """uint8 NHWC image -> float32 NCHW, /255 then x2 (an image model's usual preamble)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["as_float", "full_scale"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "gain"], ["scaled"]),
    ]
    constants = [
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "full_scale"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "gain"),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", "h", "w", 3])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["n", 3, "h", "w"])
    graph = helper.make_graph(nodes, "image_scale", [image], [scaled], initializer=constants)
    return finish_model(graph)


def build_slow_matmul_model(depth: int = SLOW_MATMULS) -> onnx.ModelProto:
    """A chain of MatMul+Tanh: deterministic work that keeps one instance busy."""
    weight = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32) / 16
    nodes, current = [], "x"
    for step in range(depth):
        nodes.append(helper.make_node("MatMul", [current, "w"], [f"mm{step}"]))
        current = "y" if step == depth - 1 else f"t{step}"
        nodes.append(helper.make_node("Tanh", [f"mm{step}"], [current]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 512, 512])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 512, 512])
    initializer = [numpy_helper.from_array(weight, "w")]
    return finish_model(helper.make_graph(nodes, "slow", [x], [y], initializer=initializer))


def build_lookup_model() -> onnx.ModelProto:
    """Gather from a 4-entry table: an index outside 0..3 makes ONNX Runtime fail."""
    node = helper.make_node("Gather", ["table", "index"], ["value"], axis=0)
    index = helper.make_tensor_value_info("index", TensorProto.INT64, ["n", 1])
    value = helper.make_tensor_value_info("value", TensorProto.FLOAT, ["n", 1])
    table = numpy_helper.from_array(LOOKUP_TABLE, "table")
    return finish_model(helper.make_graph([node], "lookup", [index], [value], [table]))


def write_model(root: Path, name: str, model: onnx.ModelProto, config: str) -> Path:
    """Lay out <root>/<name>/config.pbtxt and <root>/<name>/1/model.onnx."""
    version_dir = root / name / "1"
    version_dir.mkdir(parents=True)
    onnx.save(model, version_dir / "model.onnx")
    (root / name / "config.pbtxt").write_text(f'name: "{name}"\n{config.strip()}\n')
    return version_dir / "model.onnx"


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with image_scale (batching), slow_matmul (1-slot queue), lookup (errors)."""
    root = tmp_path_factory.mktemp("model_repository")
    write_model(root, "image_scale", build_image_scale_model(), IMAGE_SCALE_CONFIG)
    write_model(root, "slow_matmul", build_slow_matmul_model(), SLOW_MATMUL_CONFIG)
    write_model(root, "lookup", build_lookup_model(), LOOKUP_CONFIG)
    return root


@pytest.fixture(scope="session")
def broken_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """image_scale whose config claims FP32 input while the ONNX graph takes uint8."""
    root = tmp_path_factory.mktemp("broken_repository")
    config = IMAGE_SCALE_CONFIG.replace("TYPE_UINT8", "TYPE_FP32")
    write_model(root, "image_scale", build_image_scale_model(), config)
    return root


@pytest.fixture(scope="session")
def start_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartTriton]:
    """Factory: start_triton(repository, **settings overrides) -> a ready TritonServer."""
    servers: list[TritonServer] = []

    def start(repository: Path, **overrides: Any) -> TritonServer:
        grpc_port, http_port, metrics_port = free_ports(3)
        settings = TritonSettings(
            repository=repository,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            run_dir=tmp_path_factory.mktemp("triton_run"),
            startup_timeout_s=90.0,
        )
        server = TritonServer(dataclasses.replace(settings, **overrides))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def triton(start_triton: StartTriton, model_repository: Path) -> TritonServer:
    """One server for the whole session: starting Triton costs seconds."""
    return start_triton(model_repository)


def build_repository(root: Path, names: list[str], **options: object) -> Path:
    """Export `names` into `root` and add the committed configs, exactly as `make models` does."""
    export_options = ExportOptions(repository=root, show_progress=False, **options)  # type: ignore[arg-type]
    assemble_repository(names, export_options)
    return root


@pytest.fixture(scope="session")
def tiny_sr_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both SR models as tiny synthetic variants, the pre/post graphs and the ensembles, with
    the committed configs: the real repository layout in a few hundred kilobytes."""
    return build_repository(
        tmp_path_factory.mktemp("sr_repo"), SR_MODELS, tiny=True, weights="synthetic"
    )
