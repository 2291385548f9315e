"""facet_ort: a Python-based Triton backend serving any ONNX model with ONNX Runtime on CPU.

Triton runs this file inside its Python-backend stub for every model whose config.pbtxt says
`backend: "facet_ort"`; the ONNX file comes from the model's version directory. What it shares
with facet_openvino (config reading, batching, error tiers) is in backend_core.py beside it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

# Triton imports this file by path; the shared core is copied next to it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_core as core

# Triton already runs instance_group.count executors in parallel; one ORT thread per instance
# keeps instances x threads at or below the core count instead of oversubscribing it.
DEFAULT_INTRA_OP_THREADS = 1
DEFAULT_INTER_OP_THREADS = 1

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


def create_session(path: str, intra_op: int, inter_op: int) -> ort.InferenceSession:
    """Open an ORT CPU session with full graph optimisation and the given thread counts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op
    options.inter_op_num_threads = inter_op
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def ort_shape(arg: Any) -> list[int] | None:
    """An ORT NodeArg's shape with symbolic or unknown dims as -1 (None: rank unknown)."""
    if arg.shape is None:
        return None
    return [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]


def describe(arg: Any) -> core.ModelTensor:
    """An ORT NodeArg in the shared core's terms."""
    dtype = ORT_DTYPES.get(arg.type)
    return core.ModelTensor(
        frozenset({arg.name}), None if dtype is None else np.dtype(dtype), ort_shape(arg), arg.type
    )


class TritonPythonModel(core.BatchingBackend):
    """The Python-backend entry point Triton instantiates once per model instance."""

    BACKEND = "facet_ort"
    RUNTIME = "ONNX Runtime"

    def load(self, path: str, config: Mapping[str, Any], args: Mapping[str, str]) -> str:
        intra = core.read_int_parameter(config, "intra_op_thread_count", DEFAULT_INTRA_OP_THREADS)
        inter = core.read_int_parameter(config, "inter_op_thread_count", DEFAULT_INTER_OP_THREADS)
        self._session = create_session(path, intra, inter)
        return f"ORT {ort.__version__} (intra_op={intra}, inter_op={inter})"

    def mismatches(self) -> list[str]:
        session = self._session
        model_inputs = [describe(arg) for arg in session.get_inputs()]
        model_outputs = [describe(arg) for arg in session.get_outputs()]
        return core.describe_mismatches(
            model_inputs, model_outputs, self.inputs, self.outputs, self.batched
        )

    def infer(self, feeds: core.Feeds) -> dict[str, core.Array]:
        results = self._session.run(self.output_names, feeds)
        return dict(zip(self.output_names, results, strict=True))

    def finalize(self) -> None:
        self._session = None
