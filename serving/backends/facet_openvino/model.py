"""facet_openvino: a Python-based Triton backend serving any ONNX model with OpenVINO on CPU.

Triton runs this file inside its Python-backend stub for every model whose config.pbtxt says
`backend: "facet_openvino"`. The ONNX file is compiled once per instance, with the precision
(`precision`: f32 or bf16), thread count (`num_threads`) and performance hint
(`performance_hint`: LATENCY or THROUGHPUT) the config's parameters give; compiled blobs are
cached (`cache_dir`, else $FACET_OPENVINO_CACHE_DIR, else the system temp folder), so a restart
skips most of the compile. What it shares with facet_ort is in backend_core.py beside it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import openvino as ov

# Triton imports this file by path; the shared core is copied next to it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend_core as core

PRECISIONS = ("f32", "bf16")
HINTS = ("LATENCY", "THROUGHPUT")
# As facet_ort: instances run in parallel already, so one thread each unless the config says.
DEFAULT_THREADS = 1
CACHE_ENV = "FACET_OPENVINO_CACHE_DIR"


def cache_folder(config: Mapping[str, Any]) -> str:
    default = os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "facet-openvino")
    folder = core.read_str_parameter(config, "cache_dir", default)
    os.makedirs(folder, exist_ok=True)
    return folder


def compile_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """OpenVINO CPU properties from the config's parameters."""
    return {
        "INFERENCE_PRECISION_HINT": core.read_choice_parameter(
            config, "precision", PRECISIONS, "f32"
        ),
        "INFERENCE_NUM_THREADS": core.read_int_parameter(config, "num_threads", DEFAULT_THREADS),
        "PERFORMANCE_HINT": core.read_choice_parameter(
            config, "performance_hint", HINTS, "LATENCY"
        ),
        "CACHE_DIR": cache_folder(config),
    }


def port_shape(port: Any) -> list[int] | None:
    """A port's shape with dynamic dims as -1 (None: its rank is dynamic too)."""
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return None
    return [d.get_length() if d.is_static else -1 for d in shape]


def describe(port: Any) -> core.ModelTensor:
    """An OpenVINO port in the shared core's terms."""
    dtype = np.dtype(port.get_element_type().to_dtype())
    return core.ModelTensor(frozenset(port.get_names()), dtype, port_shape(port), str(dtype))


class TritonPythonModel(core.BatchingBackend):
    """The Python-backend entry point Triton instantiates once per model instance."""

    BACKEND = "facet_openvino"
    RUNTIME = "OpenVINO"

    def load(self, path: str, config: Mapping[str, Any], args: Mapping[str, str]) -> str:
        options = compile_options(config)
        runtime = ov.Core()
        self._compiled = runtime.compile_model(runtime.read_model(path), "CPU", options)
        self._request = self._compiled.create_infer_request()
        return (
            f"OpenVINO {ov.get_version()} (precision={options['INFERENCE_PRECISION_HINT']}, "
            f"threads={options['INFERENCE_NUM_THREADS']}, hint={options['PERFORMANCE_HINT']}, "
            f"cache={options['CACHE_DIR']})"
        )

    def mismatches(self) -> list[str]:
        compiled = self._compiled
        return core.describe_mismatches(
            [describe(port) for port in compiled.inputs],
            [describe(port) for port in compiled.outputs],
            self.inputs,
            self.outputs,
            self.batched,
        )

    def infer(self, feeds: core.Feeds) -> dict[str, core.Array]:
        # One request per instance: Triton calls execute() of an instance one batch at a time.
        results = self._request.infer(feeds)
        return {
            name: np.asarray(results[self._compiled.output(name)]) for name in self.output_names
        }

    def finalize(self) -> None:
        self._request = None
        self._compiled = None
