"""A synchronous Triton client for end users: list models, upscale tiles or whole images, read
statistics. Whole images are tiled on the client by the gateway's own pipeline
(`triton_core.upscale`), so a direct call gives exactly what the gateway would compute with
the same tile settings.

With `shared_memory=True` every call passes its tensors through a POSIX shared-memory region of
its own (created, registered with Triton, used, unregistered and destroyed within the call). That
saves the protobuf copies of large tensors, but only works when the client and Triton share a
host (or at least /dev/shm): Triton opens the region by its key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm

from clients.closing import ClosesOnExit
from clients.errors import (
    BadRequestError,
    DeadlineExceededError,
    FacetClientError,
    NotFoundError,
    OverloadedError,
    ServerError,
    UnavailableError,
)
from triton_core.batching import batch_slices
from triton_core.catalog import ModelFacts, facts_from_config
from triton_core.datatypes import triton_datatype
from triton_core.failures import TRITON_FAILURES, FailureKind, channel_options, classify
from triton_core.shared_memory import (
    UNREGISTER_PAUSES_S,
    RegionReadError,
    Slot,
    destroy_region,
    is_region_busy,
    plan_region,
    read_output,
)
from triton_core.tiling import DEFAULT_PRE_PAD, DEFAULT_TILE, DEFAULT_TILE_PAD
from triton_core.upscale import (
    NATIVE_SCALE,
    ModelAnswerError,
    UpscaleOptions,
)
from triton_core.upscale import upscale_image as pipeline_upscale_image

logger = logging.getLogger(__name__)

DEFAULT_URL: Final = "127.0.0.1:8001"
DEFAULT_MODEL: Final = "realesrgan_x4plus"
ENSEMBLE_PREFIX: Final = "upscale_"
ENSEMBLE_INPUT: Final = "image"
ENSEMBLE_OUTPUT: Final = "upscaled_image"
CLEANUP_TIMEOUT_S: Final = 5.0  # unregistering must not wait on a request's spent deadline
REGION_PREFIX: Final = "facet_client_"

Array = npt.NDArray[Any]
UInt8Array = npt.NDArray[np.uint8]
Progress = Callable[[float], None]
T = TypeVar("T")

_FAILURES: Final = TRITON_FAILURES


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model, as its metadata describes it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.name} {self.datatype}[{','.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class ModelSummary:
    """One model of Triton's repository. `inputs`/`outputs` are filled for ready models only."""

    name: str
    version: str
    state: str
    reason: str = ""
    platform: str = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    @property
    def ready(self) -> bool:
        return self.state == "READY"


@dataclass(frozen=True)
class ModelStatistics:
    """Triton's inference statistics of one model, summed over its versions.

    `inference_count` counts images/tiles (batch entries), `execution_count` model runs: their
    ratio is the average batch size Triton's dynamic batcher achieved. Times are milliseconds per
    successful request, averaged over the server's lifetime.
    """

    model: str
    inference_count: int
    execution_count: int
    success_count: int
    fail_count: int
    avg_queue_ms: float
    avg_compute_ms: float
    avg_request_ms: float
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def ensemble_for(model: str) -> str:
    """The uint8 ensemble serving `model`: `realesrgan_x4plus` → `upscale_realesrgan_x4plus`."""
    return model if model.startswith(ENSEMBLE_PREFIX) else f"{ENSEMBLE_PREFIX}{model}"


def map_grpc_error(exc: BaseException, *, url: str, model: str | None = None) -> FacetClientError:
    """Turn a tritonclient/gRPC/shared-memory failure into the client error it means."""
    if isinstance(exc, FacetClientError):
        return exc
    failure = classify(exc)
    status, message = failure.status, failure.message or type(exc).__name__
    code = status or None
    what = f"model '{model}'" if model else "the request"
    match failure.kind:
        case FailureKind.QUEUE_FULL:
            return OverloadedError(f"Triton's queue for {what} is full: {message}", code=code)
        case FailureKind.SHARED_MEMORY:
            return FacetClientError(
                f"shared memory failed: {message} (shared memory needs the client and Triton "
                "on the same host; drop --shm / shared_memory=True otherwise)",
                code=code,
            )
        case FailureKind.MODEL_NOT_READY:
            return UnavailableError(f"{what} is not ready on Triton at {url}: {message}", code=code)
        case FailureKind.MODEL_UNKNOWN:
            return NotFoundError(f"Triton at {url} has no {what}: {message}", code=code)
        case FailureKind.DEADLINE:
            return DeadlineExceededError(f"{what} did not answer within the deadline", code=code)
        case FailureKind.UNAVAILABLE:
            return UnavailableError(f"Triton at {url} is unavailable: {message}", code=code)
        case FailureKind.INVALID_ARGUMENT:
            return BadRequestError(f"Triton rejected {what}: {message}", code=code)
    return ServerError(f"Triton failed on {what}: {message}", code=code)


class FacetTritonClient(ClosesOnExit):
    """Blocking client over one gRPC channel to Triton; use as a context manager or `close()`.

    Every method raises `FacetClientError` subclasses (never tritonclient's own exceptions);
    `ValueError` means the arguments were wrong before anything was sent. Methods may be called
    from several threads at once.
    """

    def __init__(
        self, url: str = DEFAULT_URL, *, shared_memory: bool = False, timeout_s: float = 120.0
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = url
        self.shared_memory = shared_memory
        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(url, channel_args=channel_options())
        self._facts: dict[str, ModelFacts] = {}

    def close(self) -> None:
        self._client.close()

    # Discovery -------------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        """Every model in Triton's repository, sorted by name, with its readiness and tensors."""
        try:
            index = self._client.get_model_repository_index(
                as_json=True, client_timeout=self.timeout_s
            )
        except _FAILURES as exc:
            raise map_grpc_error(exc, url=self.url) from exc
        summaries = [self._summarise(entry) for entry in index.get("models", [])]
        return sorted(summaries, key=lambda summary: (summary.name, summary.version))

    def _summarise(self, entry: Mapping[str, Any]) -> ModelSummary:
        name, state = str(entry.get("name", "")), str(entry.get("state", ""))
        summary = ModelSummary(
            name=name,
            version=str(entry.get("version", "")),
            state=state,
            reason=str(entry.get("reason", "")),
        )
        if state != "READY":
            return summary
        try:
            metadata = self._client.get_model_metadata(
                name, as_json=True, client_timeout=self.timeout_s
            )
        except _FAILURES as exc:  # unloaded between the two calls: report what the index said
            logger.debug("no metadata for %s: %s", name, exc)
            return summary
        return ModelSummary(
            name=summary.name,
            version=summary.version,
            state=summary.state,
            reason=summary.reason,
            platform=str(metadata.get("platform", "")),
            inputs=tuple(_tensor_spec(spec) for spec in metadata.get("inputs", [])),
            outputs=tuple(_tensor_spec(spec) for spec in metadata.get("outputs", [])),
        )

    def model_facts(self, model: str) -> ModelFacts:
        """What Triton's config says of `model`: batch limit, tensors, weight facts (cached)."""
        if model not in self._facts:
            try:
                answer = self._client.get_model_config(model, client_timeout=self.timeout_s)
            except _FAILURES as exc:
                raise map_grpc_error(exc, url=self.url, model=model) from exc
            self._facts[model] = facts_from_config(answer.config)
        return self._facts[model]

    def statistics(self, model: str, version: str = "") -> ModelStatistics:
        """Triton's inference statistics of exactly `model` (an ensemble or a float model)."""
        try:
            answer = self._client.get_inference_statistics(
                model, version, as_json=True, client_timeout=self.timeout_s
            )
        except _FAILURES as exc:
            raise map_grpc_error(exc, url=self.url, model=model) from exc
        return _statistics_from_json(model, answer)

    # Inference -------------------------------------------------------------------------------

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        *,
        output_nbytes: Mapping[str, int] | None = None,
    ) -> dict[str, Array]:
        """Run `model` on named numpy `inputs`; return the named `outputs` as numpy arrays.

        With shared memory, inputs always go through the region; an output does only when
        `output_nbytes` gives its size (otherwise it comes back inside the gRPC answer).
        """
        arrays = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        try:
            if self.shared_memory:
                return self._infer_shared(model, arrays, outputs, output_nbytes or {})
            return self._infer_wire(model, arrays, outputs)
        except _FAILURES as exc:
            raise map_grpc_error(exc, url=self.url, model=model) from exc

    def upscale_tiles(self, tiles: UInt8Array, model: str = DEFAULT_MODEL) -> UInt8Array:
        """N×h×w×3 uint8 RGB tiles → N×4h×4w×3 through the uint8 ensemble `upscale_<model>`.

        More tiles than the ensemble's config allows per call go as several calls, in order.
        """
        if tiles.dtype != np.uint8 or tiles.ndim != 4 or tiles.shape[3] != 3 or not tiles.size:
            raise ValueError(f"tiles must be N×h×w×3 uint8, got {tiles.shape} {tiles.dtype}")
        ensemble = ensemble_for(model)
        limit = self.model_facts(ensemble).max_batch_size
        if len(tiles) > limit:
            return np.concatenate(
                [self.upscale_tiles(tiles[part], model) for part in batch_slices(len(tiles), limit)]
            )
        expected = (
            tiles.shape[0],
            tiles.shape[1] * NATIVE_SCALE,
            tiles.shape[2] * NATIVE_SCALE,
            3,
        )
        out_nbytes = int(np.prod(expected))
        result = self.infer(
            ensemble,
            {ENSEMBLE_INPUT: tiles},
            [ENSEMBLE_OUTPUT],
            output_nbytes={ENSEMBLE_OUTPUT: out_nbytes},
        )[ENSEMBLE_OUTPUT]
        if result.shape != expected or result.dtype != np.uint8:
            raise ServerError(
                f"'{ensemble}' returned {result.shape} {result.dtype}; expected {expected} uint8"
            )
        return result

    def upscale_image(
        self,
        rgb: UInt8Array,
        *,
        model: str = DEFAULT_MODEL,
        outscale: int = 4,
        tile: int = DEFAULT_TILE,
        tile_pad: int = DEFAULT_TILE_PAD,
        pre_pad: int = DEFAULT_PRE_PAD,
        batch: int | None = None,
        progress: Progress | None = None,
    ) -> UInt8Array:
        """Upscale an H×W×3 (or H×W×4 RGBA) uint8 image to outscale·H × outscale·W.

        The gateway's pipeline does the tiling: Real-ESRGAN's grid of `tile`-pixel cores with
        `tile_pad` pixels of context, `pre_pad` reflected pixels bottom/right, `batch` tiles per
        request (default and ceiling: the ensemble's max_batch_size) and two requests in
        flight. `outscale` 2 resizes the native ×4 result with area averaging. An alpha channel
        is resized linearly, as the gateway does. `progress` gets the fraction of tiles done
        (0..1] after each batch.
        """
        image = np.asarray(rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"image must be H×W×3 or H×W×4 uint8, got {image.shape} {image.dtype}")
        color = np.ascontiguousarray(image[..., :3])
        alpha = np.ascontiguousarray(image[..., 3]) if image.shape[2] == 4 else None
        options = UpscaleOptions(
            outscale=outscale,
            tile_size=tile,
            tile_pad=tile_pad,
            pre_pad=pre_pad,
        )
        session = _TileSession(self, model, batch)
        try:
            out_rgb, out_alpha = _run_sync(
                pipeline_upscale_image(color, alpha, session, options, on_progress=progress)
            )
        except ModelAnswerError as exc:  # the pipeline's own checks of what Triton returned
            raise ServerError(str(exc)) from exc
        if out_alpha is None:
            return out_rgb
        return np.ascontiguousarray(np.dstack([out_rgb, out_alpha]))

    # Transport -------------------------------------------------------------------------------

    def _infer_wire(
        self, model: str, inputs: Mapping[str, Array], outputs: Sequence[str]
    ) -> dict[str, Array]:
        tensors = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), triton_datatype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        result = self._client.infer(
            model, tensors, outputs=requested, client_timeout=self.timeout_s
        )
        return {name: _require(result.as_numpy(name), model, name) for name in outputs}

    def _infer_shared(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        output_nbytes: Mapping[str, int],
    ) -> dict[str, Array]:
        # Outputs of unknown size come back inside the gRPC answer.
        input_slots, output_slots, size = plan_region(inputs, outputs, output_nbytes)
        deadline = time.monotonic() + self.timeout_s
        with self._region(size, deadline) as (region, handle):
            for slot in input_slots:
                shm.set_shared_memory_region(handle, [inputs[slot.name]], offset=slot.offset)
            tensors = []
            for slot in input_slots:
                array = inputs[slot.name]
                tensor = grpcclient.InferInput(
                    slot.name, list(array.shape), triton_datatype(array.dtype)
                )
                tensor.set_shared_memory(region, slot.nbytes, offset=slot.offset)
                tensors.append(tensor)
            by_name = {slot.name: slot for slot in output_slots}
            requested = []
            for name in outputs:
                output = grpcclient.InferRequestedOutput(name)
                if name in by_name:
                    placed = by_name[name]
                    output.set_shared_memory(region, placed.nbytes, offset=placed.offset)
                requested.append(output)
            result = self._client.infer(
                model, tensors, outputs=requested, client_timeout=_remaining(deadline)
            )
            found = {slot.name: _read_region(handle, result, slot, model) for slot in output_slots}
            wire = {
                name: _require(result.as_numpy(name), model, name)
                for name in outputs
                if name not in found
            }
            return {name: found[name] if name in found else wire[name] for name in outputs}

    @contextlib.contextmanager
    def _region(self, size: int, deadline: float) -> Iterator[tuple[str, Any]]:
        """One region for one call: created here, registered with Triton, and always
        unregistered and destroyed on the way out, whatever happened in between."""
        region = f"{REGION_PREFIX}{uuid.uuid4().hex}"
        key = f"/{region}"
        handle = shm.create_shared_memory_region(region, key, size, create_only=True)
        try:
            try:
                self._client.register_system_shared_memory(
                    region, key, size, client_timeout=_remaining(deadline)
                )
                yield region, handle
            finally:
                # Unregister even when registration's answer was lost: Triton may hold it.
                self._unregister(region)
        finally:
            destroy_region(handle, region)

    def _unregister(self, region: str) -> None:
        for pause in (*UNREGISTER_PAUSES_S, None):
            try:
                self._client.unregister_system_shared_memory(
                    region, client_timeout=CLEANUP_TIMEOUT_S
                )
                return
            except _FAILURES as exc:  # a Triton that is gone has forgotten the region anyway
                if pause is None or not is_region_busy(exc):
                    logger.warning("could not unregister shared memory region %s: %s", region, exc)
                    return
            time.sleep(pause)


class _TileSession:
    """Adapts the blocking client to the gateway pipeline's async `TileUpscaler` protocol:
    each batch runs in a worker thread, so the pipeline's two batches in flight overlap."""

    scale = NATIVE_SCALE

    def __init__(self, client: FacetTritonClient, model: str, batch: int | None) -> None:
        self._client = client
        self._model = model
        self._batch = batch

    async def batch_limit(self) -> int:
        facts = await asyncio.to_thread(self._client.model_facts, ensemble_for(self._model))
        return min(self._batch or facts.max_batch_size, facts.max_batch_size)

    async def upscale_tiles(self, tiles: UInt8Array) -> UInt8Array:
        return await asyncio.to_thread(self._client.upscale_tiles, tiles, self._model)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError("the deadline passed before the request was sent")
    return left


def _read_region(handle: Any, result: Any, slot: Slot, model: str) -> Array:
    try:
        return read_output(handle, result, slot, model)
    except RegionReadError as exc:
        raise ServerError(str(exc)) from exc


def _require(array: Array | None, model: str, name: str) -> Array:
    if array is None:
        raise ServerError(f"model '{model}' returned no output '{name}'")
    return array


def _tensor_spec(spec: Mapping[str, Any]) -> TensorSpec:
    return TensorSpec(
        name=str(spec.get("name", "")),
        datatype=str(spec.get("datatype", "")),
        shape=tuple(int(dim) for dim in spec.get("shape", [])),
    )


def _statistics_from_json(model: str, answer: Mapping[str, Any]) -> ModelStatistics:
    """Sum Triton's per-version statistics (int64 values arrive as JSON strings)."""
    totals: dict[str, int] = {
        "inference_count": 0,
        "execution_count": 0,
        "success_count": 0,
        "success_ns": 0,
        "fail_count": 0,
        "queue_ns": 0,
        "compute_ns": 0,
    }
    for stats in answer.get("model_stats", []):
        inference = stats.get("inference_stats", {})
        totals["inference_count"] += int(stats.get("inference_count", 0))
        totals["execution_count"] += int(stats.get("execution_count", 0))
        totals["success_count"] += int(inference.get("success", {}).get("count", 0))
        totals["success_ns"] += int(inference.get("success", {}).get("ns", 0))
        totals["fail_count"] += int(inference.get("fail", {}).get("count", 0))
        totals["queue_ns"] += int(inference.get("queue", {}).get("ns", 0))
        for part in ("compute_input", "compute_infer", "compute_output"):
            totals["compute_ns"] += int(inference.get(part, {}).get("ns", 0))
    per_request_ms = 1e-6 / max(1, totals["success_count"])
    return ModelStatistics(
        model=model,
        inference_count=totals["inference_count"],
        execution_count=totals["execution_count"],
        success_count=totals["success_count"],
        fail_count=totals["fail_count"],
        avg_queue_ms=totals["queue_ns"] * per_request_ms,
        avg_compute_ms=totals["compute_ns"] * per_request_ms,
        avg_request_ms=totals["success_ns"] * per_request_ms,
        raw=dict(answer),
    )


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from blocking code, even inside a running event loop
    (a notebook): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
