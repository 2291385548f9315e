"""The facet_ort backend inside a real tritonserver, reached over gRPC."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from serving.errors import TritonStartError
from serving.launcher import TritonServer, free_ports
from tests.integration.triton_counts import counts_since, model_counts

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
Outcome: TypeAlias = npt.NDArray[Any] | InferenceServerException


@pytest.fixture(scope="module")
def client(triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(triton.grpc_url) as connection:
        yield connection


def make_inputs(feeds: dict[str, npt.NDArray[Any]]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array in feeds.items():
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def infer_burst(
    client: grpcclient.InferenceServerClient,
    model: str,
    requests: list[dict[str, npt.NDArray[Any]]],
    output: str,
) -> list[Outcome]:
    """Fire all requests without waiting, then collect each output array or error in order."""
    outcomes: dict[int, Outcome] = {}
    finished = threading.Condition()

    def on_done(index: int, result: Any, error: InferenceServerException | None) -> None:
        with finished:
            outcomes[index] = error if error is not None else result.as_numpy(output)
            finished.notify()

    for index, feeds in enumerate(requests):
        client.async_infer(
            model,
            make_inputs(feeds),
            callback=lambda result, error, i=index: on_done(i, result, error),
        )
    with finished:
        assert finished.wait_for(lambda: len(outcomes) == len(requests), timeout=60)
    return [outcomes[index] for index in range(len(requests))]


def run_in_process(onnx_path: Path, feeds: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """The reference: the same ONNX file run by onnxruntime in this process."""
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feeds)[0])


def random_images(count: int, shape: tuple[int, ...]) -> list[npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(count)]


def test_grpc_output_equals_in_process_onnx_runtime_exactly(
    client: grpcclient.InferenceServerClient, model_repository: Path
) -> None:
    image = random_images(1, (2, 5, 7, 3))[0]
    result = client.infer("image_scale", make_inputs({"image": image}))
    expected = run_in_process(model_repository / "image_scale/1/model.onnx", {"image": image})
    np.testing.assert_array_equal(result.as_numpy("scaled"), expected)


def test_concurrent_requests_are_batched_by_triton_and_split_back_correctly(
    client: grpcclient.InferenceServerClient, model_repository: Path
) -> None:
    images = random_images(16, (1, 6, 4, 3))
    before = model_counts(client, "image_scale")
    outcomes = infer_burst(client, "image_scale", [{"image": i} for i in images], "scaled")
    inferences, executions = counts_since(client, "image_scale", before, inferences=16)

    onnx_path = model_repository / "image_scale/1/model.onnx"
    for image, outcome in zip(images, outcomes, strict=True):
        assert isinstance(outcome, np.ndarray), outcome
        np.testing.assert_array_equal(outcome, run_in_process(onnx_path, {"image": image}))
    assert inferences == 16
    assert executions < 16


def test_a_full_queue_rejects_part_of_a_burst_with_a_queue_error(
    client: grpcclient.InferenceServerClient,
) -> None:
    x = np.ones((1, 512, 512), dtype=np.float32)
    outcomes = infer_burst(client, "slow_matmul", [{"x": x}] * 8, "y")

    rejected = [o for o in outcomes if isinstance(o, InferenceServerException)]
    served = [o for o in outcomes if isinstance(o, np.ndarray)]
    assert rejected, "a 1-slot queue behind a busy instance should reject some of 8 requests"
    assert served, "the request being executed should still be answered"
    assert all("queue" in str(error).lower() for error in rejected), rejected


def test_a_wrong_dtype_request_fails_and_the_server_keeps_serving(
    client: grpcclient.InferenceServerClient,
) -> None:
    wrong = np.zeros((1, 4, 4, 3), dtype=np.float32)
    with pytest.raises(InferenceServerException, match="image"):
        client.infer("image_scale", make_inputs({"image": wrong}))

    assert client.is_server_live()
    right = np.full((1, 4, 4, 3), 255, dtype=np.uint8)
    result = client.infer("image_scale", make_inputs({"image": right}))
    np.testing.assert_array_equal(result.as_numpy("scaled"), np.full((1, 3, 4, 4), 2.0))


def test_an_onnx_runtime_failure_fails_only_the_offending_request(
    client: grpcclient.InferenceServerClient,
) -> None:
    indices = [0, 7, 2, 3, 1]  # 7 is outside the 4-entry table
    requests = [{"index": np.array([[i]], dtype=np.int64)} for i in indices]
    outcomes = infer_burst(client, "lookup", requests, "value")

    assert isinstance(outcomes[1], InferenceServerException)
    assert "ONNX Runtime failed" in str(outcomes[1])
    table = [10.0, 20.0, 30.0, 40.0]
    for index, outcome in zip(indices, outcomes, strict=True):
        if index != 7:
            assert isinstance(outcome, np.ndarray), outcome
            assert outcome.tolist() == [[table[index]]]


def test_a_model_whose_config_disagrees_with_its_onnx_graph_fails_start_with_the_log(
    start_triton: Any, broken_repository: Path
) -> None:
    with pytest.raises(TritonStartError) as failure:
        start_triton(broken_repository, startup_timeout_s=60.0)
    mismatch = "input 'image': config dtype float32, model tensor(uint8)"
    assert mismatch in failure.value.log_tail
    assert any(mismatch in line for line in failure.value.error_lines)
    assert "exited with code" in str(failure.value)


def test_serve_help_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--repository" in completed.stdout


def test_serve_runs_until_sigterm_then_stops_triton_cleanly(
    model_repository: Path, tmp_path: Path
) -> None:
    grpc_port, http_port, metrics_port = free_ports(3)
    command = [sys.executable, "-m", "serving", "serve", "--repository", str(model_repository)]
    command += [f"--grpc-port={grpc_port}", f"--http-port={http_port}"]
    command += [f"--metrics-port={metrics_port}", f"--run-dir={tmp_path}"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    lines = read_lines_in_background(process)
    try:
        output = wait_for_line(lines, "Press Ctrl-C", timeout_s=90)
        assert f"gRPC:    127.0.0.1:{grpc_port}" in output
        assert is_ready(http_port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert not is_ready(http_port)


def read_lines_in_background(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Queue the process's stdout lines as they come; None marks its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], marker: str, timeout_s: float) -> str:
    """Return everything printed up to and including the line containing `marker`."""
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while not seen or marker not in seen[-1]:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert line is not None, "serve exited early:\n" + "".join(seen)
        seen.append(line)
    return "".join(seen)


def is_ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2):
            return True
    except OSError:
        return False
