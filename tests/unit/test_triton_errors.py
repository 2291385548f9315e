"""map_triton_error and the dtype tables, with errors shaped exactly as Triton 2.51 sends them."""

from __future__ import annotations

import uuid

import grpc
import numpy as np
import pytest
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException
from tritonclient.utils.shared_memory import SharedMemoryException

from gateway.errors import (
    ModelNotReady,
    Overloaded,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.triton_client import DEFAULT_OUTPUT_REGION_BYTES, map_triton_error
from triton_core.datatypes import numpy_dtype, triton_datatype
from triton_core.shared_memory import (
    SHM_ALIGNMENT,
    UNREGISTER_PAUSES_S,
    RegionReadError,
    Slot,
    destroy_region,
    is_region_busy,
    plan_region,
    read_output,
)

MODEL = "upscale_realesrgan_x4plus"


def triton_error(status: str | None, message: str) -> InferenceServerException:
    return InferenceServerException(
        message, status=None if status is None else f"StatusCode.{status}"
    )


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("UNAVAILABLE", "[request id: <id_unknown>] Exceeds maximum queue size"),
        ("RESOURCE_EXHAUSTED", "resource exhausted"),
    ],
)
def test_a_full_queue_is_overloaded_with_retry_after(status, message) -> None:
    error = map_triton_error(triton_error(status, message), MODEL)
    assert type(error) is Overloaded
    assert error.status == 503 and error.retry_after is not None and error.retry_after > 0
    assert MODEL in error.detail


@pytest.mark.parametrize(
    "message",
    [
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:8001: "
        "Failed to connect to remote host: Connection refused",
        "Stream removed (Socket closed)",
        "[request id: <id_unknown>] Server is stopping, scheduler for model has stopped "
        "accepting new inference requests",
        "Too many pings",
    ],
)
def test_an_unreachable_or_stopping_server_is_unavailable(message) -> None:
    error = map_triton_error(triton_error("UNAVAILABLE", message), MODEL)
    assert type(error) is Unavailable
    assert error.status == 503 and error.retry_after is not None
    assert "127.0.0.1" not in error.detail, "internal addresses must not reach clients"


def test_a_cancelled_call_is_unavailable() -> None:
    error = map_triton_error(triton_error("CANCELLED", "Locally cancelled by application!"), MODEL)
    assert type(error) is Unavailable


def test_a_missed_deadline_is_an_upstream_timeout() -> None:
    error = map_triton_error(triton_error("DEADLINE_EXCEEDED", "Deadline Exceeded"), MODEL)
    assert type(error) is UpstreamTimeout and error.status == 504
    assert MODEL in error.detail


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("NOT_FOUND", "Request for unknown model: 'nope' is not found"),
        ("NOT_FOUND", "Request for unknown model: 'nope' has no available versions"),
        ("UNAVAILABLE", "Request for unknown model: 'nope' version 1 is not at ready state"),
        ("NOT_FOUND", "something new about the model"),
    ],
)
def test_a_missing_or_loading_model_is_model_not_ready_naming_it(status, message) -> None:
    error = map_triton_error(triton_error(status, message), "nope")
    assert isinstance(error, ModelNotReady)
    assert error.status == 503 and error.model == "nope" and "'nope'" in error.detail


def test_an_invalid_argument_is_our_bug_so_an_upstream_error() -> None:
    message = "inference input 'image' data-type is 'FP32', but model expects 'UINT8'"
    error = map_triton_error(triton_error("INVALID_ARGUMENT", message), MODEL)
    assert type(error) is UpstreamError and error.status == 502
    assert message in error.detail


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("INTERNAL", "onnxruntime failed: bad index"),
        ("NOT_FOUND", "Unable to find shared memory region: 'facet_123'"),
        ("UNKNOWN", "who knows"),
        (None, "model version must be a string"),
    ],
)
def test_anything_else_is_an_upstream_error(status, message) -> None:
    error = map_triton_error(triton_error(status, message), MODEL)
    assert type(error) is UpstreamError and error.status == 502


def test_raw_grpc_errors_are_mapped_by_their_code() -> None:
    metadata = grpc.aio.Metadata()
    raw = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, metadata, metadata, details="Deadline Exceeded"
    )
    assert type(map_triton_error(raw, MODEL)) is UpstreamTimeout
    raw = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, metadata, metadata, details="down")
    assert type(map_triton_error(raw, MODEL)) is Unavailable


def test_a_shared_memory_failure_is_an_upstream_error() -> None:
    error = map_triton_error(SharedMemoryException("unable to create the region"), MODEL)
    assert type(error) is UpstreamError


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.uint8, "UINT8"),
        (np.float32, "FP32"),
        (np.int64, "INT64"),
        (np.int32, "INT32"),
        (np.float16, "FP16"),
        (np.float64, "FP64"),
        (np.bool_, "BOOL"),
        (np.uint16, "UINT16"),
        (np.int8, "INT8"),
    ],
)
def test_numpy_dtypes_map_to_triton_datatypes_and_back(dtype, datatype) -> None:
    assert triton_datatype(dtype) == datatype
    assert triton_datatype(np.zeros(1, dtype).dtype) == datatype
    assert numpy_dtype(datatype) == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.complex64, ">f4", "U3"])
def test_dtypes_triton_cannot_read_are_refused(dtype) -> None:
    with pytest.raises(TypeError):
        triton_datatype(dtype)


def test_object_arrays_of_bytes_are_sent_as_triton_strings() -> None:
    assert triton_datatype(np.array([b"a photo of a cat"], dtype=np.object_).dtype) == "BYTES"


def test_bytes_has_no_fixed_size_numpy_dtype() -> None:
    with pytest.raises(TypeError):
        numpy_dtype("BYTES")


def test_the_gateway_gives_every_output_room_in_the_region() -> None:
    inputs: dict[str, np.ndarray] = {"a": np.zeros(10, np.uint8), "b": np.zeros((2, 3), np.float32)}
    input_slots, output_slots, size = plan_region(
        inputs, ["x", "y"], {"x": 100}, default_output_nbytes=DEFAULT_OUTPUT_REGION_BYTES
    )
    assert [(s.name, s.offset, s.nbytes) for s in input_slots] == [("a", 0, 10), ("b", 64, 24)]
    assert [(s.name, s.offset, s.nbytes) for s in output_slots] == [
        ("x", 128, 100),
        ("y", 256, DEFAULT_OUTPUT_REGION_BYTES),
    ]
    assert size == 256 + DEFAULT_OUTPUT_REGION_BYTES and size % SHM_ALIGNMENT == 0


def test_only_a_region_still_in_use_is_worth_another_unregister() -> None:
    busy = InferenceServerException(
        "Cannot unregister shared memory region 'facet_1', it is currently in use.",
        status="StatusCode.INTERNAL",
    )
    assert is_region_busy(busy)
    assert not is_region_busy(InferenceServerException("failed to connect to all addresses"))
    assert not is_region_busy(SharedMemoryException("unable to unlink"))
    assert 2.0 < sum(UNREGISTER_PAUSES_S) <= 6.0  # waits the release out, gives up in seconds


class _Output:
    def __init__(self, datatype: str, shape: list[int]) -> None:
        self.datatype, self.shape = datatype, shape


class _Result:
    def __init__(self, **outputs: _Output) -> None:
        self._outputs = outputs

    def get_output(self, name: str) -> _Output | None:
        return self._outputs.get(name)


def test_an_output_is_copied_out_of_its_region_or_refused_with_a_reason() -> None:
    region = f"facet_test_{uuid.uuid4().hex}"
    handle = shm.create_shared_memory_region(region, f"/{region}", 256, create_only=True)
    try:
        written = np.arange(12, dtype=np.float32).reshape(3, 4)
        shm.set_shared_memory_region(handle, [written], offset=64)
        slot = Slot("y", 64, 48)
        result = _Result(y=_Output("FP32", [3, 4]), big=_Output("FP32", [4, 4]))
        np.testing.assert_array_equal(read_output(handle, result, slot, "m"), written)
        with pytest.raises(RegionReadError, match="overflows"):
            read_output(handle, result, Slot("big", 64, 48), "m")
        with pytest.raises(RegionReadError, match="no output 'z'"):
            read_output(handle, result, Slot("z", 0, 8), "m")
        with pytest.raises(RegionReadError, match="BYTES"):
            read_output(handle, _Result(s=_Output("BYTES", [1])), Slot("s", 0, 8), "m")
    finally:
        destroy_region(handle, region)
