"""Small pre/post-processing models written directly as ONNX graphs.

Images cross the wire as uint8 (4× smaller than float32); these graphs do the cast inside
Triton, so an ensemble can expose uint8-in, uint8-out upscaling around any float model.
`image_to_tensor` / `tensor_to_image` map to [0, 1] (the SR models), `face_to_tensor` /
`tensor_to_face` to [-1, 1] (GFPGAN), `face_to_float` keeps 0..255 (the dlib face embedder,
which normalises inside its own graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from export.spec import Array, Batching, TensorSpec

# Opset 17 matches the torch exports, so one ORT/TensorRT floor serves the whole repository.
GRAPH_OPSET = 17


@dataclass(frozen=True)
class GraphSpec:
    name: str
    description: str
    build: Callable[[], onnx.ModelProto]
    reference: Callable[[Array], Array]
    sample: Callable[[], Array]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: Batching
    opset: int = GRAPH_OPSET


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    name: str,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", GRAPH_OPSET)])
    model.producer_name = "facet.export.graphs"
    onnx.checker.check_model(model, full_check=True)
    return model


def _scalar(name: str, value: float) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def build_image_to_tensor() -> onnx.ModelProto:
    """uint8 N×H×W×3 RGB → float32 N×3×H×W in [0, 1]."""
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["image_f", "c255"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["tensor"], perm=[0, 3, 1, 2]),
    ]
    inputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])]
    outputs = [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    return _model(nodes, inputs, outputs, [_scalar("c255", 255.0)], "image_to_tensor")


def build_tensor_to_image() -> onnx.ModelProto:
    """float32 N×3×H×W → uint8 N×H×W×3: clamp to [0, 1], ×255, round half to even (as numpy)."""
    nodes = [
        helper.make_node("Clip", ["tensor", "c0", "c1"], ["clipped"]),
        helper.make_node("Mul", ["clipped", "c255"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["rounded"]),
        helper.make_node("Cast", ["rounded"], ["image_u8"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["image_u8"], ["image"], perm=[0, 2, 3, 1]),
    ]
    inputs = [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    outputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])]
    initializers = [_scalar("c0", 0.0), _scalar("c1", 1.0), _scalar("c255", 255.0)]
    return _model(nodes, inputs, outputs, initializers, "tensor_to_image")


def build_face_to_tensor() -> onnx.ModelProto:
    """uint8 N×H×W×3 RGB face → float32 N×3×H×W in [-1, 1]: (x/255 − 0.5)/0.5, as GFPGAN's
    own pre-processing (RGB, normalised with mean 0.5 and std 0.5 per channel)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["image_f", "c255"], ["unit"]),
        helper.make_node("Sub", ["unit", "c_half"], ["centred"]),
        helper.make_node("Div", ["centred", "c_half"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["tensor"], perm=[0, 3, 1, 2]),
    ]
    inputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])]
    outputs = [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    initializers = [_scalar("c255", 255.0), _scalar("c_half", 0.5)]
    return _model(nodes, inputs, outputs, initializers, "face_to_tensor")


def build_tensor_to_face() -> onnx.ModelProto:
    """float32 N×3×H×W in [-1, 1] → uint8 N×H×W×3: (y + 1)/2 clamped to [0, 1], ×255, round
    half to even, as GFPGAN's tensor2img(min_max=(-1, 1)) does."""
    nodes = [
        helper.make_node("Add", ["tensor", "c1"], ["shifted"]),
        helper.make_node("Div", ["shifted", "c2"], ["unit"]),
        helper.make_node("Clip", ["unit", "c0", "c1"], ["clipped"]),
        helper.make_node("Mul", ["clipped", "c255"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["rounded"]),
        helper.make_node("Cast", ["rounded"], ["image_u8"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["image_u8"], ["image"], perm=[0, 2, 3, 1]),
    ]
    inputs = [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    outputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])]
    initializers = [_scalar("c0", 0.0), _scalar("c1", 1.0), _scalar("c2", 2.0)]
    initializers.append(_scalar("c255", 255.0))
    return _model(nodes, inputs, outputs, initializers, "tensor_to_face")


def build_face_to_float() -> onnx.ModelProto:
    """uint8 N×H×W×3 RGB face → float32 N×3×H×W with the pixel values unchanged (0..255)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_f"], ["tensor"], perm=[0, 3, 1, 2]),
    ]
    inputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])]
    outputs = [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    return _model(nodes, inputs, outputs, [], "face_to_float")


def image_to_tensor_reference(image: Array) -> Array:
    return np.ascontiguousarray(image.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255))


def face_to_float_reference(image: Array) -> Array:
    return np.ascontiguousarray(image.astype(np.float32).transpose(0, 3, 1, 2))


def tensor_to_image_reference(tensor: Array) -> Array:
    scaled = np.clip(tensor, 0.0, 1.0).astype(np.float32) * np.float32(255)
    return np.ascontiguousarray(np.round(scaled).astype(np.uint8).transpose(0, 2, 3, 1))


def face_to_tensor_reference(image: Array) -> Array:
    unit = image.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    return np.ascontiguousarray((unit - np.float32(0.5)) / np.float32(0.5))


def tensor_to_face_reference(tensor: Array) -> Array:
    unit = (tensor.astype(np.float32) + np.float32(1)) / np.float32(2)
    scaled = np.clip(unit, np.float32(0), np.float32(1)) * np.float32(255)
    return np.ascontiguousarray(np.round(scaled).astype(np.uint8).transpose(0, 2, 3, 1))


def _sample_images() -> Array:
    from export.samples import astronaut_crop

    return np.stack([astronaut_crop(32), astronaut_crop(32)[::-1]])


def _sample_tensors() -> Array:
    # Values outside [0, 1] and exact halves exercise the clamp and the rounding rule.
    rng = np.random.default_rng(0)
    tensor = rng.uniform(-0.2, 1.2, size=(2, 3, 16, 16)).astype(np.float32)
    tensor[0, 0, 0, :4] = np.array([0.5, 1.5, 2.5, 3.5], np.float32) / 255
    return tensor


def _sample_face_tensors() -> Array:
    # Values outside [-1, 1] and values that land on exact halves exercise clamp and rounding.
    rng = np.random.default_rng(1)
    tensor = rng.uniform(-1.3, 1.3, size=(2, 3, 16, 16)).astype(np.float32)
    tensor[0, 0, 0, :4] = np.array([0.5, 1.5, 2.5, 3.5], np.float32) * np.float32(2 / 255) - 1
    return tensor


# Pre/post steps are cheap; they batch wide and run one instance so they never starve the model.
_PREPOST_BATCHING = Batching(
    max_batch_size=16,
    preferred_batch_sizes=(),
    max_queue_delay_us=0,
    max_queue_size=64,
    intra_op_threads=1,
)

GRAPHS: dict[str, GraphSpec] = {
    spec.name: spec
    for spec in (
        GraphSpec(
            name="image_to_tensor",
            description="uint8 NHWC RGB image → float32 NCHW tensor in [0, 1]",
            build=build_image_to_tensor,
            reference=image_to_tensor_reference,
            sample=_sample_images,
            inputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
            outputs=(TensorSpec("tensor", "TYPE_FP32", (3, -1, -1)),),
            batching=_PREPOST_BATCHING,
        ),
        GraphSpec(
            name="tensor_to_image",
            description="float32 NCHW tensor → uint8 NHWC RGB image (clamped, rounded)",
            build=build_tensor_to_image,
            reference=tensor_to_image_reference,
            sample=_sample_tensors,
            inputs=(TensorSpec("tensor", "TYPE_FP32", (3, -1, -1)),),
            outputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
            batching=_PREPOST_BATCHING,
        ),
        GraphSpec(
            name="face_to_tensor",
            description="uint8 NHWC RGB face → float32 NCHW tensor in [-1, 1] (GFPGAN input)",
            build=build_face_to_tensor,
            reference=face_to_tensor_reference,
            sample=_sample_images,
            inputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
            outputs=(TensorSpec("tensor", "TYPE_FP32", (3, -1, -1)),),
            batching=_PREPOST_BATCHING,
        ),
        GraphSpec(
            name="face_to_float",
            description="uint8 NHWC RGB face → float32 NCHW tensor, values 0..255 (dlib input)",
            build=build_face_to_float,
            reference=face_to_float_reference,
            sample=_sample_images,
            inputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
            outputs=(TensorSpec("tensor", "TYPE_FP32", (3, -1, -1)),),
            batching=_PREPOST_BATCHING,
        ),
        GraphSpec(
            name="tensor_to_face",
            description="float32 NCHW tensor in [-1, 1] → uint8 NHWC RGB face (clamped, rounded)",
            build=build_tensor_to_face,
            reference=tensor_to_face_reference,
            sample=_sample_face_tensors,
            inputs=(TensorSpec("tensor", "TYPE_FP32", (3, -1, -1)),),
            outputs=(TensorSpec("image", "TYPE_UINT8", (-1, -1, 3)),),
            batching=_PREPOST_BATCHING,
        ),
    )
}
