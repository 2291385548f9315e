"""What Facet's Python-based Triton backends share: reading tensors and parameters from the
model config, fitting request tensors to it, batching same-shaped requests into one run and
splitting the answers back, and the two error tiers (a bad request fails alone; a broken model
fails to load).

`python -m serving` copies this file next to each backend's model.py (Triton lets a backend
import only what its own folder holds), so edit it here, once. Only the standard library, numpy
and triton_python_backend_utils are importable here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

DEFAULT_MODEL_FILENAME = "model.onnx"

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


class InputError(ValueError):
    """A request tensor cannot be fed to the model; only that request fails."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as config.pbtxt declares it (dims exclude the batch dimension)."""

    name: str
    dtype: np.dtype[Any]
    dims: tuple[int, ...]


def read_specs(config: Mapping[str, Any], section: str, backend: str) -> list[TensorSpec]:
    """Return the `input` or `output` entries of the model config."""
    specs = []
    for entry in config.get(section, []):
        if "reshape" in entry:
            raise ValueError(
                f"{section} '{entry['name']}': 'reshape' is not supported by {backend}"
            )
        type_name = entry["data_type"]
        if type_name not in CONFIG_DTYPES:
            raise ValueError(f"{section} '{entry['name']}': {type_name} is not supported")
        dims = tuple(int(d) for d in entry.get("dims", []))
        specs.append(TensorSpec(entry["name"], np.dtype(CONFIG_DTYPES[type_name]), dims))
    return specs


def read_str_parameter(config: Mapping[str, Any], key: str, default: str) -> str:
    raw = config.get("parameters", {}).get(key, {}).get("string_value")
    return default if raw is None or raw == "" else str(raw)


def read_int_parameter(config: Mapping[str, Any], key: str, default: int) -> int:
    """Return a positive integer from config `parameters` (Triton stores them as strings)."""
    raw = read_str_parameter(config, key, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValueError(f"parameter {key}={raw!r} is not an integer") from error
    if value < 1:
        raise ValueError(f"parameter {key}={value} must be at least 1")
    return value


def read_choice_parameter(
    config: Mapping[str, Any], key: str, choices: Sequence[str], default: str
) -> str:
    value = read_str_parameter(config, key, default)
    if value not in choices:
        raise ValueError(f"parameter {key}={value!r} must be one of {list(choices)}")
    return value


def locate_model_file(args: Mapping[str, str], config: Mapping[str, Any]) -> str:
    """Return <model dir>/<version>/<default_model_filename or model.onnx>."""
    filename = config.get("default_model_filename") or DEFAULT_MODEL_FILENAME
    path = os.path.join(args["model_repository"], args["model_version"], filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    return path


@dataclass(frozen=True)
class ModelTensor:
    """One input or output as the runtime reports it, in common terms."""

    names: frozenset[str]  # a runtime may give a port several names
    dtype: np.dtype[Any] | None  # None: a type numpy has no name for
    shape: list[int] | None  # -1 for dynamic dims; None when even the rank is unknown
    type_text: str  # the runtime's own spelling of the type, for messages


def describe_mismatches(
    model_inputs: Sequence[ModelTensor],
    model_outputs: Sequence[ModelTensor],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    batched: bool,
) -> list[str]:
    """List every way the config's inputs/outputs disagree with the loaded model."""
    configured = {spec.name for spec in inputs}
    problems = [
        f"model input '{sorted(tensor.names)[0]}' is missing from the config"
        for tensor in model_inputs
        if not tensor.names & configured
    ]
    for kind, specs, tensors in (
        ("input", inputs, model_inputs),
        ("output", outputs, model_outputs),
    ):
        declared = {name: tensor for tensor in tensors for name in tensor.names}
        for spec in specs:
            tensor = declared.get(spec.name)
            if tensor is None:
                problems.append(
                    f"config {kind} '{spec.name}' is not in the model ({sorted(declared)})"
                )
                continue
            if tensor.dtype != spec.dtype:
                problems.append(
                    f"{kind} '{spec.name}': config dtype {spec.dtype}, model {tensor.type_text}"
                )
            problems += compare_shape(kind, spec, tensor.shape, batched)
    return problems


def compare_shape(
    kind: str, spec: TensorSpec, shape: Sequence[int] | None, batched: bool
) -> list[str]:
    """Compare a config tensor's rank and fixed dims with the model's shape (-1: dynamic; None:
    rank unknown)."""
    if shape is None:
        return []
    expected = ((-1,) if batched else ()) + spec.dims
    if len(shape) != len(expected):
        return [f"{kind} '{spec.name}': config rank {len(expected)}, model {list(shape)}"]
    if batched and shape[0] > 0:
        return [f"{kind} '{spec.name}': max_batch_size > 0 but model batch is {shape[0]}"]
    return [
        f"{kind} '{spec.name}' axis {axis}: config {expected[axis]}, model {shape[axis]}"
        for axis in range(1 if batched else 0, len(expected))
        if shape[axis] > 0 and expected[axis] != shape[axis]
    ]


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


class BatchingBackend:
    """The Triton entry points both backends share. A backend subclasses it, names itself in
    `BACKEND` and `RUNTIME`, and implements `load` (open the model file, return how it was
    opened for the log) and `infer` (named arrays in, named arrays out)."""

    BACKEND = "facet_backend"
    RUNTIME = "a runtime"

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.inputs = read_specs(config, "input", self.BACKEND)
        self.outputs = read_specs(config, "output", self.BACKEND)
        self.output_names = [spec.name for spec in self.outputs]
        path = locate_model_file(args, config)
        started = time.monotonic()
        how = self.load(path, config, args)
        problems = self.mismatches()
        if problems:
            raise ValueError(
                f"{self.BACKEND}: config of '{args['model_name']}' does not match {path}: "
                + "; ".join(problems)
            )
        pb_utils.Logger.log_info(
            f"{self.BACKEND}: {args['model_name']} v{args['model_version']} instance "
            f"{args.get('model_instance_name', '?')} serves {path} with {how} "
            f"(batched={self.batched}; ready in {time.monotonic() - started:.1f} s)"
        )

    def load(self, path: str, config: Mapping[str, Any], args: Mapping[str, str]) -> str:
        raise NotImplementedError

    def mismatches(self) -> list[str]:
        """Every way the config's inputs/outputs disagree with the loaded model."""
        raise NotImplementedError

    def infer(self, feeds: Feeds) -> dict[str, Array]:
        raise NotImplementedError

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

    def _read_feeds(self, request: Any) -> Feeds:
        feeds = {}
        for spec in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            if tensor is None:
                raise InputError(f"input '{spec.name}' is missing")
            feeds[spec.name] = conform_input(tensor.as_numpy(), spec, self.batched)
        return feeds

    def _group_key(self, index: int, feeds: Feeds) -> Hashable:
        # Requests can share one run only when every non-batch dim agrees; an unbatched
        # model (max_batch_size 0) has no batch axis to concatenate on.
        if not self.batched:
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
            parts = split_outputs(self.infer(merged), sizes)
        except Exception:
            # One request's values (say, an out-of-range index) can fail a shared run; rerun
            # each alone so only the culprit gets an error.
            return [(index, self._run_alone(feeds)) for index, feeds in members]
        return [
            (index, success_response(part)) for (index, _), part in zip(members, parts, strict=True)
        ]

    def _run_alone(self, feeds: Feeds) -> Any:
        try:
            return success_response(self.infer(feeds))
        except Exception as error:
            return error_response(f"{self.RUNTIME} failed: {error}")
