"""facet_ort: a Python-based Triton backend serving any ONNX model with ONNX Runtime on CPU.

Triton runs this file inside its Python-backend stub for every model whose config.pbtxt says
`backend: "facet_ort"`; the ONNX file comes from the model's version directory. Only the
standard library, numpy, onnxruntime and triton_python_backend_utils are importable here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

DEFAULT_MODEL_FILENAME = "model.onnx"
# Triton already runs instance_group.count executors in parallel; one ORT thread per instance
# keeps instances x threads at or below the core count instead of oversubscribing it.
DEFAULT_INTRA_OP_THREADS = 1
DEFAULT_INTER_OP_THREADS = 1

Array = npt.NDArray[Any]
Feeds = dict[str, Array]

CONFIG_DTYPES: dict[str, type[np.generic]] = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
}

ORT_DTYPES: dict[str, type[np.generic]] = {
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(float16)": np.float16,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class InputError(ValueError):
    """A request tensor cannot be fed to the model; only that request fails."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as config.pbtxt declares it (dims exclude the batch dimension)."""

    name: str
    dtype: np.dtype[Any]
    dims: tuple[int, ...]


def read_specs(config: Mapping[str, Any], section: str) -> list[TensorSpec]:
    """Return the `input` or `output` entries of the model config."""
    specs = []
    for entry in config.get(section, []):
        if "reshape" in entry:
            raise ValueError(
                f"{section} '{entry['name']}': 'reshape' is not supported by facet_ort"
            )
        type_name = entry["data_type"]
        if type_name not in CONFIG_DTYPES:
            raise ValueError(f"{section} '{entry['name']}': {type_name} is not supported")
        dims = tuple(int(d) for d in entry.get("dims", []))
        specs.append(TensorSpec(entry["name"], np.dtype(CONFIG_DTYPES[type_name]), dims))
    return specs


def read_int_parameter(config: Mapping[str, Any], key: str, default: int) -> int:
    """Return a positive integer from config `parameters` (Triton stores them as strings)."""
    raw = config.get("parameters", {}).get(key, {}).get("string_value")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValueError(f"parameter {key}={raw!r} is not an integer") from error
    if value < 1:
        raise ValueError(f"parameter {key}={value} must be at least 1")
    return value


def locate_model_file(args: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """Return <model dir>/<version>/<default_model_filename or model.onnx>."""
    filename = config.get("default_model_filename") or DEFAULT_MODEL_FILENAME
    path = os.path.join(args["model_repository"], args["model_version"], filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    return path


def create_session(path: str, intra_op: int, inter_op: int) -> ort.InferenceSession:
    """Open an ORT CPU session with full graph optimisation and the given thread counts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op
    options.inter_op_num_threads = inter_op
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def describe_mismatches(
    session: ort.InferenceSession,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    batched: bool,
) -> list[str]:
    """List every way the config's inputs/outputs disagree with the ONNX graph."""
    problems = []
    model_inputs = {arg.name: arg for arg in session.get_inputs()}
    model_outputs = {arg.name: arg for arg in session.get_outputs()}
    for name in sorted(set(model_inputs) - {spec.name for spec in inputs}):
        problems.append(f"model input '{name}' is missing from the config")
    for kind, specs, declared in (
        ("input", inputs, model_inputs),
        ("output", outputs, model_outputs),
    ):
        for spec in specs:
            arg = declared.get(spec.name)
            if arg is None:
                problems.append(
                    f"config {kind} '{spec.name}' is not in the model ({sorted(declared)})"
                )
                continue
            problems += compare_arg(kind, spec, arg, batched)
    return problems


def compare_arg(kind: str, spec: TensorSpec, arg: Any, batched: bool) -> list[str]:
    """Compare one config tensor with the matching ORT NodeArg (dtype, rank, fixed dims)."""
    problems = []
    model_dtype = ORT_DTYPES.get(arg.type)
    if model_dtype is None or np.dtype(model_dtype) != spec.dtype:
        problems.append(f"{kind} '{spec.name}': config dtype {spec.dtype}, model {arg.type}")
    shape = arg.shape
    if shape is None:  # rank unknown to ORT: nothing more to check
        return problems
    expected = ((-1,) if batched else ()) + spec.dims
    if len(shape) != len(expected):
        problems.append(f"{kind} '{spec.name}': config rank {len(expected)}, model {shape}")
    elif batched and isinstance(shape[0], int) and shape[0] > 0:
        problems.append(f"{kind} '{spec.name}': max_batch_size > 0 but model batch is {shape[0]}")
    else:
        problems += compare_dims(kind, spec, expected, shape, batched)
    return problems


def compare_dims(
    kind: str, spec: TensorSpec, expected: Sequence[int], shape: Sequence[Any], batched: bool
) -> list[str]:
    """Report fixed model dims the config leaves variable or sets differently."""
    problems = []
    for axis in range(1 if batched else 0, len(expected)):
        model_dim = shape[axis] if isinstance(shape[axis], int) and shape[axis] > 0 else -1
        if model_dim != -1 and expected[axis] != model_dim:
            problems.append(
                f"{kind} '{spec.name}' axis {axis}: config {expected[axis]}, model {model_dim}"
            )
    return problems


def conform_input(array: Array, spec: TensorSpec, batched: bool) -> Array:
    """Return `array` with the config dtype and a shape the config allows, or raise InputError."""
    if array.dtype != spec.dtype:
        # Triton normally rejects a wrong datatype before execute(); this guards other callers.
        if not np.can_cast(array.dtype, spec.dtype, casting="safe"):
            raise InputError(f"input '{spec.name}': {array.dtype} cannot be cast to {spec.dtype}")
        array = array.astype(spec.dtype)
    dims = array.shape[1:] if batched else array.shape
    if len(dims) != len(spec.dims) or (batched and array.ndim == 0):
        raise InputError(f"input '{spec.name}': shape {array.shape} does not fit {spec.dims}")
    for got, want in zip(dims, spec.dims, strict=True):
        if want != -1 and got != want:
            raise InputError(f"input '{spec.name}': shape {array.shape} does not fit {spec.dims}")
    return array


def error_response(message: str) -> Any:
    """Return a response that fails one request without affecting the others."""
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )


def success_response(outputs: Mapping[str, Array]) -> Any:
    """Wrap output arrays as a Triton response."""
    tensors = [pb_utils.Tensor(name, np.ascontiguousarray(a)) for name, a in outputs.items()]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def split_outputs(outputs: Mapping[str, Array], sizes: Sequence[int]) -> list[dict[str, Array]]:
    """Cut batched outputs back into one dict per request, by each request's batch size."""
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise RuntimeError(f"output '{name}' has shape {array.shape}, expected batch {total}")
    cuts = np.cumsum(sizes)[:-1]
    pieces = {name: np.split(array, cuts) for name, array in outputs.items()}
    return [{name: parts[i] for name, parts in pieces.items()} for i in range(len(sizes))]


class TritonPythonModel:
    """The Python-backend entry point Triton instantiates once per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._batched = int(config.get("max_batch_size", 0)) > 0
        self._inputs = read_specs(config, "input")
        self._outputs = read_specs(config, "output")
        path = locate_model_file(args, config)
        intra = read_int_parameter(config, "intra_op_thread_count", DEFAULT_INTRA_OP_THREADS)
        inter = read_int_parameter(config, "inter_op_thread_count", DEFAULT_INTER_OP_THREADS)
        self._session = create_session(path, intra, inter)
        problems = describe_mismatches(self._session, self._inputs, self._outputs, self._batched)
        if problems:
            raise ValueError(
                f"facet_ort: config of '{args['model_name']}' does not match {path}: "
                + "; ".join(problems)
            )
        self._output_names = [spec.name for spec in self._outputs]
        pb_utils.Logger.log_info(
            f"facet_ort: {args['model_name']} v{args['model_version']} "
            f"instance {args.get('model_instance_name', '?')} serves {path} with ORT "
            f"{ort.__version__} (intra_op={intra}, inter_op={inter}, batched={self._batched})"
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """Run each group of same-shaped requests as one batch; failures stay per request."""
        responses: list[Any] = [None] * len(requests)
        groups: dict[Hashable, list[tuple[int, Feeds]]] = {}
        for index, request in enumerate(requests):
            try:
                feeds = self._read_feeds(request)
            except InputError as error:
                responses[index] = error_response(str(error))
                continue
            groups.setdefault(self._group_key(index, feeds), []).append((index, feeds))
        for members in groups.values():
            for index, response in self._run_group(members):
                responses[index] = response
        return responses

    def finalize(self) -> None:
        self._session = None

    def _read_feeds(self, request: Any) -> Feeds:
        feeds = {}
        for spec in self._inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            if tensor is None:
                raise InputError(f"input '{spec.name}' is missing")
            feeds[spec.name] = conform_input(tensor.as_numpy(), spec, self._batched)
        return feeds

    def _group_key(self, index: int, feeds: Feeds) -> Hashable:
        # Requests can share one ORT run only when every non-batch dim agrees; an unbatched
        # model (max_batch_size 0) has no batch axis to concatenate on.
        if not self._batched:
            return ("alone", index)
        return tuple((name, array.shape[1:]) for name, array in feeds.items())

    def _run_group(self, members: list[tuple[int, Feeds]]) -> list[tuple[int, Any]]:
        if len(members) == 1:
            index, feeds = members[0]
            return [(index, self._run_alone(feeds))]
        names = members[0][1].keys()
        merged = {name: np.concatenate([feeds[name] for _, feeds in members]) for name in names}
        sizes = [next(iter(feeds.values())).shape[0] for _, feeds in members]
        try:
            parts = split_outputs(self._infer(merged), sizes)
        except Exception:
            # One request's values (say, an out-of-range index) can fail a shared run; rerun
            # each alone so only the culprit gets an error.
            return [(index, self._run_alone(feeds)) for index, feeds in members]
        return [
            (index, success_response(part)) for (index, _), part in zip(members, parts, strict=True)
        ]

    def _run_alone(self, feeds: Feeds) -> Any:
        try:
            return success_response(self._infer(feeds))
        except Exception as error:
            return error_response(f"ONNX Runtime failed: {error}")

    def _infer(self, feeds: Feeds) -> dict[str, Array]:
        results = self._session.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))
