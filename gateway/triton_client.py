"""The gateway's one way to Triton: one gRPC channel per Triton endpoint, a deadline on every
call, Triton's errors turned into gateway errors (what each failure means is decided in
`triton_core.failures`), a background readiness poll with the model catalog, and optional
shared memory.

With several endpoints (FACET_TRITON_GRPC_URLS) calls are spread over the ready ones
(gateway/triton_endpoints.py). A call that finds its endpoint unreachable or its model not
loaded there is sent to the next one: every call this client makes is idempotent (inference on
stateless models, readiness and config reads; it loads and unloads nothing), so running one
twice costs compute, never a wrong answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.utils.shared_memory as shm
from numpy.typing import NDArray

from gateway.errors import (
    FacetError,
    ModelNotReady,
    Overloaded,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.settings import Settings
from gateway.triton_endpoints import Endpoint, EndpointPool
from triton_core.catalog import ModelCatalog, ModelFacts, facts_from_config
from triton_core.datatypes import triton_datatype
from triton_core.failures import (
    TRITON_FAILURES,
    FailureKind,
    channel_options,
    classify,
    read_message,
    read_status,
)
from triton_core.shared_memory import (
    UNREGISTER_PAUSES_S,
    RegionReadError,
    Slot,
    destroy_region,
    is_region_busy,
    plan_region,
    read_output,
)

logger = logging.getLogger(__name__)

Array = NDArray[Any]


OVERLOADED_RETRY_AFTER_S = 2  # a full Triton queue drains in a few batches
UNAVAILABLE_RETRY_AFTER_S = 5  # a restarting Triton needs a few seconds to load its models
PROBE_TIMEOUT_S = 2.0  # deadline of one readiness RPC
CLEANUP_TIMEOUT_S = 5.0  # unregistering a region must not wait on the request's spent deadline
DEFAULT_OUTPUT_REGION_BYTES = 256 * 1024 * 1024  # sparse: tmpfs uses pages only when written

_TritonFailure = TRITON_FAILURES
# Failures after which the same call goes to another endpoint: this one cannot serve it.
ELSEWHERE = (FailureKind.UNAVAILABLE, FailureKind.MODEL_NOT_READY, FailureKind.MODEL_UNKNOWN)
Client: TypeAlias = grpcaio.InferenceServerClient


class _NotHere(Exception):
    """A call's answer from one endpoint that sends it to the next (its model is not ready)."""


Call: TypeAlias = Callable[[Client], Awaitable[Any]]


def map_triton_error(exc: BaseException, model: str) -> FacetError:
    """Turn an error from a Triton call about `model` into the gateway error it means.

    Connection-level details (addresses) stay out of the public detail; chain `exc` to log them.
    """
    failure = classify(exc)
    kind = failure.kind
    if kind is FailureKind.QUEUE_FULL:
        return Overloaded(
            f"the inference queue for model '{model}' is full",
            retry_after=OVERLOADED_RETRY_AFTER_S,
        )
    if kind in (FailureKind.MODEL_NOT_READY, FailureKind.MODEL_UNKNOWN):
        return ModelNotReady(model)
    if kind is FailureKind.DEADLINE:
        return UpstreamTimeout(f"model '{model}' did not answer within the deadline")
    if kind is FailureKind.UNAVAILABLE:
        return Unavailable("inference server unavailable", retry_after=UNAVAILABLE_RETRY_AFTER_S)
    if kind is FailureKind.INVALID_ARGUMENT:
        # The gateway builds every tensor itself, so a rejected tensor is our bug, not the user's.
        return UpstreamError(
            f"the inference server rejected the request for '{model}': {failure.message}"
        )
    detail = failure.message or failure.status
    return UpstreamError(f"the inference server failed on model '{model}': {detail}")


@dataclass(frozen=True)
class _Poll:
    live: bool
    ready: bool
    error: str | None


@dataclass
class _Readiness:
    server_live: bool = False
    server_ready: bool = False
    models: dict[str, bool] = field(default_factory=dict)
    checked_at: float | None = None
    error: str | None = None


class TritonClient:
    """Async Triton client over reused gRPC channels; create, `await start()`, `await close()`.

    Every call carries a deadline, and every failure leaves as a `FacetError`. A channel
    reconnects by itself when Triton comes back on the same address, so a Triton restart needs
    no gateway restart.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: EndpointPool[Client] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._models: set[str] = set()
        self._state = _Readiness()
        self._catalog = ModelCatalog()

    async def start(self) -> None:
        """Open the channel and start polling readiness; call from the serving event loop."""
        if self._pool is not None:
            raise RuntimeError("TritonClient is already started")
        self._pool = EndpointPool(
            [
                (url, grpcaio.InferenceServerClient(url, channel_args=channel_options()))
                for url in self._settings.triton_urls
            ]
        )
        self._poller = asyncio.create_task(self._poll_readiness(), name="triton-readiness")

    async def close(self) -> None:
        """Stop polling and close the channel (calls still in flight end as Unavailable)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        pool, self._pool = self._pool, None
        if pool is not None:
            for endpoint in pool.endpoints:
                await endpoint.client.close()

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        *,
        timeout_s: float | None = None,
        output_nbytes: Mapping[str, int] | None = None,
    ) -> dict[str, Array]:
        """Run `model` on `inputs` and return the named `outputs`.

        `timeout_s` (default: settings.triton_timeout_s) bounds the whole call, shared-memory
        setup included. `output_nbytes` sizes the shared-memory room for each output (only
        used with shared memory; default DEFAULT_OUTPUT_REGION_BYTES). Arrays received over
        gRPC are read-only views of the response.
        """
        self._models.add(model)
        timeout = self._settings.triton_timeout_s if timeout_s is None else timeout_s
        if timeout <= 0:
            raise ValueError("timeout_s must be positive")
        deadline = asyncio.get_running_loop().time() + timeout
        # Strings (BYTES) have no fixed size to lay out in a region: they go on the wire.
        has_strings = any(array.dtype == np.object_ for array in inputs.values())
        has_strings |= self._returns_strings(model, outputs)
        shared = self._settings.triton_use_shared_memory and not has_strings

        async def call(client: Client) -> dict[str, Array]:
            if shared:
                return await self._infer_shared(
                    client, model, inputs, outputs, deadline, output_nbytes or {}
                )
            return await self._infer_wire(client, model, inputs, outputs, _remaining(deadline))

        result: dict[str, Array] = await self._call_any(call, model)
        return result

    async def _call_any(self, call: Call, model: str) -> Any:
        """`call` on the endpoints in the pool's order until one answers; an endpoint that is
        unreachable is taken out of the rotation (and the failure is the last one's)."""
        pool = self._require_pool()
        failure: BaseException | None = None
        for endpoint in pool.candidates():
            try:
                answer = await call(endpoint.client)
            except _NotHere:
                continue
            except _TritonFailure as exc:
                kind = classify(exc).kind
                if kind is FailureKind.DEADLINE:  # stalled: not retried, but given a rest
                    pool.mark_failed(endpoint)
                if kind not in ELSEWHERE:
                    raise map_triton_error(exc, model) from exc
                if kind is FailureKind.UNAVAILABLE:
                    pool.mark_failed(endpoint)
                    self._log_endpoint(endpoint, exc)
                failure = exc
                continue
            return answer
        if failure is None:
            raise ModelNotReady(model)
        raise map_triton_error(failure, model) from failure

    def _returns_strings(self, model: str, outputs: Sequence[str]) -> bool:
        """Whether an asked-for output is a string tensor (caption_blip's captions,
        detect_objects' label names): those cannot be laid out in a shared-memory region."""
        facts = self._catalog.get(model)
        if facts is None:
            return False
        wanted = set(outputs)
        return any(t.datatype in ("STRING", "BYTES") for t in facts.outputs if t.name in wanted)

    async def _infer_wire(
        self,
        client: grpcaio.InferenceServerClient,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        timeout: float,
    ) -> dict[str, Array]:
        """Send the tensors inside the gRPC messages (works across hosts)."""
        tensors = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), triton_datatype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        result = await client.infer(model, tensors, outputs=requested, client_timeout=timeout)
        return {name: _require_output(result.as_numpy(name), model, name) for name in outputs}

    async def _infer_shared(
        self,
        client: grpcaio.InferenceServerClient,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        deadline: float,
        output_nbytes: Mapping[str, int],
    ) -> dict[str, Array]:
        """Pass tensors through one POSIX shared-memory region registered for this call only.

        This only helps when the gateway and Triton share a host (or at least /dev/shm):
        Triton opens the region by its key, so across hosts registration fails. It saves the
        protobuf copies of large tensors, at the price of two extra small RPCs (register and
        unregister) per call. /dev/shm must be large enough for the outputs actually written:
        a tmpfs that runs out while Triton writes makes Triton fail (or crash with SIGBUS).
        """
        input_slots, output_slots, size = plan_region(
            inputs, outputs, output_nbytes, default_output_nbytes=DEFAULT_OUTPUT_REGION_BYTES
        )
        region = f"facet_{uuid.uuid4().hex}"
        key = f"/{region}"
        handle = shm.create_shared_memory_region(region, key, size, create_only=True)
        try:
            for slot in input_slots:
                shm.set_shared_memory_region(handle, [inputs[slot.name]], offset=slot.offset)
            try:
                await client.register_system_shared_memory(
                    region, key, size, client_timeout=_remaining(deadline)
                )
                result = await client.infer(
                    model,
                    _shared_inputs(region, input_slots, inputs),
                    outputs=_shared_outputs(region, output_slots),
                    client_timeout=_remaining(deadline),
                )
            finally:
                # Unregister even when registration's answer was lost: Triton may hold it.
                await self._unregister(client, region)
            return {
                slot.name: _read_shared_output(handle, result, slot, model) for slot in output_slots
            }
        finally:
            destroy_region(handle, region)

    async def _unregister(self, client: grpcaio.InferenceServerClient, region: str) -> None:
        """Drop a region from Triton; a Triton that is gone has forgotten it anyway."""
        for pause in (*UNREGISTER_PAUSES_S, None):
            try:
                await client.unregister_system_shared_memory(
                    region, client_timeout=CLEANUP_TIMEOUT_S
                )
                return
            except _TritonFailure as exc:
                if pause is None or not is_region_busy(exc):
                    logger.warning("could not unregister shared memory region %s: %s", region, exc)
                    return
            await asyncio.sleep(pause)

    async def is_model_ready(self, model: str) -> bool:
        """Ask Triton now whether `model` is ready (False when Triton cannot be reached); the
        model is then polled in the background too."""
        try:
            return await self.require_ready(model)
        except FacetError:  # unreachable, too slow to answer, or any other failure: not ready
            return False

    async def require_ready(self, model: str) -> bool:
        """True when `model` is ready; ModelNotReady when Triton says it is not, Unavailable
        ("inference server unavailable") when Triton cannot be reached at all."""
        self._models.add(model)
        timeout = self._probe_timeout()

        async def ask(client: Client) -> bool:
            if not await client.is_model_ready(model, client_timeout=timeout):
                raise _NotHere  # the next endpoint may have it loaded
            return True

        try:
            ready = await self._call_any(ask, model)
        except ModelNotReady:
            ready = False
        except FacetError as exc:
            self._state.error = exc.detail
            self._state.models[model] = False
            raise
        self._state.models[model] = ready
        if not ready:
            raise ModelNotReady(model)
        return True

    @property
    def catalog(self) -> ModelCatalog:
        """What Triton's configs said at the last readiness poll (or on-demand lookup)."""
        return self._catalog

    async def current_catalog(self) -> ModelCatalog:
        """The catalog, polled now if no poll has run yet; Unavailable while the last poll
        could not reach Triton (so "not installed" is never said of an unreachable server)."""
        if self._state.checked_at is None:
            await self.check_readiness()
        if self._state.error is not None and not self._state.server_ready:
            raise Unavailable("inference server unavailable", retry_after=UNAVAILABLE_RETRY_AFTER_S)
        return self._catalog

    async def model_facts(self, model: str) -> ModelFacts:
        """The facts of `model` from the catalog, asking Triton now if it has none yet (a poll
        that ran before the model loaded); ModelNotReady/Unavailable when Triton cannot say."""
        known = self._catalog.get(model)
        if known is not None:
            return known
        timeout = self._probe_timeout()
        answer = await self._call_any(
            lambda client: client.get_model_config(model, client_timeout=timeout), model
        )
        facts = facts_from_config(answer.config)
        self._catalog = self._catalog.with_model(facts)
        # Its steps too: a poll that ran while they loaded left them out, and their weight
        # facts are what a response's synthetic-weights warning is made of.
        for component in facts.components:
            if component not in self._catalog and component != model:
                await self.model_facts(component)
        return facts

    def readiness(self) -> dict[str, Any]:
        """Return the last readiness poll: server live/ready, per-model ready, when, last error.

        `error` holds Triton's raw words (addresses included): meant for operators.
        """
        state = self._state
        return {
            "server_live": state.server_live,
            "server_ready": state.server_ready,
            "models": dict(state.models),
            "checked_at": state.checked_at,
            "error": state.error,
            "endpoints": self._pool.describe() if self._pool is not None else [],
        }

    async def check_readiness(self) -> dict[str, Any]:
        """Poll every endpoint once now and return the new snapshot: the server is ready when
        one endpoint is, a model when it is ready on one that is."""
        pool = self._require_pool()
        timeout = self._probe_timeout()
        models = sorted(self._models)
        polls = await asyncio.gather(*(self._poll_endpoint(e, timeout) for e in pool.endpoints))
        state = _Readiness(models={name: False for name in models})
        state.server_live = any(poll.live for poll in polls)
        state.server_ready = any(poll.ready for poll in polls)
        errors = [poll.error for poll in polls if poll.error]
        ready = [e for e, poll in zip(pool.endpoints, polls, strict=True) if poll.ready]
        try:
            for endpoint in ready:
                answers = await asyncio.gather(
                    *(endpoint.client.is_model_ready(m, client_timeout=timeout) for m in models)
                )
                for name, answer in zip(models, answers, strict=True):
                    state.models[name] = state.models[name] or bool(answer)
            if ready:
                self._catalog = await self._read_catalog(ready[0].client, timeout)
        except _TritonFailure as exc:
            errors.append(_describe(exc))
        state.error = "; ".join(errors) or None
        state.checked_at = time.time()
        self._log_change(state)
        self._state = state
        return self.readiness()

    async def _poll_endpoint(self, endpoint: Endpoint[Client], timeout: float) -> _Poll:
        """One endpoint's health check; its answer puts it in or out of the rotation."""
        pool = self._require_pool()
        try:
            live = bool(await endpoint.client.is_server_live(client_timeout=timeout))
            ready = live and bool(await endpoint.client.is_server_ready(client_timeout=timeout))
        except _TritonFailure as exc:
            pool.mark_failed(endpoint)
            return _Poll(False, False, self._endpoint_error(endpoint, exc))
        if ready:
            pool.mark_ready(endpoint)
        else:
            pool.mark_failed(endpoint)
        return _Poll(live, ready, None if ready else f"{self._name(endpoint)}: not ready")

    def _name(self, endpoint: Endpoint[Client]) -> str:
        single = len(self._require_pool().endpoints) == 1
        return "Triton" if single else f"Triton {endpoint.index} ({endpoint.url})"

    def _endpoint_error(self, endpoint: Endpoint[Client], exc: BaseException) -> str:
        described = _describe(exc)
        return (
            described
            if len(self._require_pool().endpoints) == 1
            else (f"{self._name(endpoint)}: {described}")
        )

    def _log_endpoint(self, endpoint: Endpoint[Client], exc: BaseException) -> None:
        logger.warning(
            "%s unreachable, out of rotation for a while: %s",
            self._name(endpoint),
            _describe(exc),
        )

    async def _read_catalog(
        self, client: grpcaio.InferenceServerClient, timeout: float
    ) -> ModelCatalog:
        """The configs of every ready model in Triton's repository, read afresh (a reloaded
        model may have a new config under the same name)."""
        index = await client.get_model_repository_index(client_timeout=timeout)
        names = sorted({m.name for m in index.models if m.state == "READY"})
        answers = await asyncio.gather(
            *(client.get_model_config(name, client_timeout=timeout) for name in names)
        )
        facts = [facts_from_config(answer.config) for answer in answers]
        return ModelCatalog(facts, listed=[m.name for m in index.models])

    async def _poll_readiness(self) -> None:
        """Refresh readiness forever; an unexpected error must not end the poll for good."""
        while True:
            try:
                await self.check_readiness()
            except Exception:
                logger.exception("Triton readiness poll failed")
            await asyncio.sleep(self._settings.triton_readiness_interval_s)

    def _log_change(self, state: _Readiness) -> None:
        if state.server_ready != self._state.server_ready or state.error != self._state.error:
            level = logging.INFO if state.server_ready else logging.WARNING
            logger.log(level, "Triton ready=%s error=%s", state.server_ready, state.error)

    def _probe_timeout(self) -> float:
        return min(PROBE_TIMEOUT_S, self._settings.triton_timeout_s)

    def _require_pool(self) -> EndpointPool[Client]:
        if self._pool is None:
            raise RuntimeError("TritonClient.start() has not been awaited")
        return self._pool


def _remaining(deadline: float) -> float:
    """Return the seconds left before `deadline`; UpstreamTimeout when none are."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise UpstreamTimeout("the inference deadline passed before the request was sent")
    return left


def _describe(exc: BaseException) -> str:
    status = read_status(exc)
    return f"{status}: {read_message(exc)}" if status else read_message(exc)


def _require_output(array: Array | None, model: str, name: str) -> Array:
    if array is None:
        raise UpstreamError(f"model '{model}' returned no output '{name}'")
    return array


def _shared_inputs(
    region: str, slots: Sequence[Slot], inputs: Mapping[str, Array]
) -> list[grpcclient.InferInput]:
    tensors = []
    for slot in slots:
        array = inputs[slot.name]
        tensor = grpcclient.InferInput(slot.name, list(array.shape), triton_datatype(array.dtype))
        tensor.set_shared_memory(region, slot.nbytes, offset=slot.offset)
        tensors.append(tensor)
    return tensors


def _shared_outputs(region: str, slots: Sequence[Slot]) -> list[grpcclient.InferRequestedOutput]:
    requested = []
    for slot in slots:
        output = grpcclient.InferRequestedOutput(slot.name)
        output.set_shared_memory(region, slot.nbytes, offset=slot.offset)
        requested.append(output)
    return requested


def _read_shared_output(
    handle: Any, result: grpcclient.InferResult, slot: Slot, model: str
) -> Array:
    try:
        return read_output(handle, result, slot, model)
    except RegionReadError as exc:
        raise UpstreamError(str(exc)) from exc
