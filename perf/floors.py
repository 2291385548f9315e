"""The floors under the served models: one call at the serving shape (a 148² tile, a 512² face;
batch 1 and 4) on ONNX Runtime FP32 and OpenVINO FP32 in-process (export.cpu_runtime's runners,
the ones the install timed, with the model's thread budget), and on the served model through
Triton over gRPC. Each is timed after a warm-up call; the median is reported."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from perf.realistic_results import ORT_F32, TRITON_SERVED, FloorRun
from perf.samples import to_nchw_float
from perf.servers import read_config
from perf.triton_stats import read_counters

Array = npt.NDArray[Any]
MODEL_FILE: Final = Path("1") / "model.onnx"


def config_thread_budget(repository: Path, model: str) -> int:
    """The threads the served config gives the model (facet_ort: intra_op_thread_count,
    facet_openvino: num_threads)."""
    config = read_config(repository / model / "config.pbtxt")
    for key in ("intra_op_thread_count", "num_threads"):
        if key in config.parameters and config.parameters[key].string_value:
            return int(config.parameters[key].string_value)
    return 1


def served_backend(repository: Path, model: str) -> str:
    return str(read_config(repository / model / "config.pbtxt").backend)


def tensor_names(repository: Path, model: str) -> tuple[str, str]:
    config = read_config(repository / model / "config.pbtxt")
    return config.input[0].name, config.output[0].name


def batch_of(items: Array, batch: int) -> Array:
    """`batch` of the items (repeated when there are fewer), contiguous."""
    picks = [items[index % len(items)] for index in range(batch)]
    return np.ascontiguousarray(np.stack(picks))


def sr_inputs(tiles: npt.NDArray[np.uint8]) -> Array:
    """N×S×S×3 uint8 tiles → N×3×S×S float in [0, 1]: the SR models' input."""
    return to_nchw_float(tiles)


def face_inputs(faces: npt.NDArray[np.uint8]) -> Array:
    """N×512×512×3 uint8 aligned faces → N×3×512×512 float in [-1, 1]: GFPGAN's input."""
    unit = to_nchw_float(faces)
    return np.ascontiguousarray(unit * np.float32(2.0) - np.float32(1.0))


def timed_ms(call: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls."""
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        call()
        times.append(1000.0 * (time.perf_counter() - started))
    return times


Runner = Callable[[dict[str, Array]], list[Array]]


class InProcess:
    """ONNX Runtime / OpenVINO FP32 runners of the repository's model files, built once per
    model and runtime (compiling GFPGAN for OpenVINO takes seconds) and shared by batches."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self._runners: dict[tuple[str, str], Runner] = {}

    def runner(self, model: str, runtime: str) -> Runner:
        from export.cpu_runtime import ORT_F32 as ORT_CANDIDATE
        from export.cpu_runtime import OV_F32 as OV_CANDIDATE
        from export.cpu_runtime import runner

        key = (model, runtime)
        if key not in self._runners:
            candidate = ORT_CANDIDATE if runtime == ORT_F32 else OV_CANDIDATE
            threads = config_thread_budget(self.repository, model)
            self._runners[key] = runner(self.repository / model / MODEL_FILE, candidate, threads)
        return self._runners[key]

    def measure(
        self, model: str, item: str, runtime: str, inputs: Array, batch: int, runs: int
    ) -> FloorRun:
        """`runs` timed calls of one batch after a warm-up call (first calls allocate)."""
        run = self.runner(model, runtime)
        name, _ = tensor_names(self.repository, model)
        feeds = {name: batch_of(inputs, batch)}
        run(feeds)
        times = timed_ms(lambda: run(feeds), runs)
        threads = config_thread_budget(self.repository, model)
        return FloorRun(model, item, runtime, batch, times, threads=threads)

    def release(self) -> None:
        self._runners.clear()


def served(
    url: str, repository: Path, model: str, item: str, inputs: Array, batch: int, runs: int
) -> FloorRun:
    """`runs` timed gRPC calls of one batch to the served float model, with Triton's own
    compute time per item from its statistics."""
    import tritonclient.grpc as grpcclient

    input_name, output_name = tensor_names(repository, model)
    tensor = batch_of(inputs, batch)
    client = grpcclient.InferenceServerClient(url)
    try:
        wire = grpcclient.InferInput(input_name, list(tensor.shape), "FP32")
        wire.set_data_from_numpy(tensor)
        outputs = [grpcclient.InferRequestedOutput(output_name)]

        def call() -> object:
            return client.infer(model, [wire], outputs=outputs).as_numpy(output_name)

        call()  # warm-up outside the counters
        before = read_counters(client, model)
        times = timed_ms(call, runs)
        delta = read_counters(client, model) - before
    finally:
        client.close()
    per_item = delta.batch_compute_ns / max(delta.inferences, 1) / 1e6 if delta.inferences else None
    return FloorRun(
        model,
        item,
        TRITON_SERVED,
        batch,
        times,
        server_ms_per_item=per_item,
        threads=config_thread_budget(repository, model),
    )
