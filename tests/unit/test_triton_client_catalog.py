"""The gateway's Triton client: a probe that fails in any way means "not ready" (health stays a
503 document), and looking up a model also learns the models it is composed of, so its weight
facts (and the synthetic-weights warning) are never left "unknown"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from gateway.settings import Settings
from gateway.triton_client import TritonClient
from gateway.triton_endpoints import EndpointPool

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


class FakeTriton:
    """Answers like tritonclient.grpc.aio would; configs come from the committed files."""

    def __init__(self, probe_error: Exception | None = None) -> None:
        self.probe_error = probe_error
        self.asked: list[str] = []

    async def is_model_ready(self, model: str, client_timeout: float) -> bool:
        if self.probe_error is not None:
            raise self.probe_error
        return True

    async def get_model_config(self, model: str, client_timeout: float) -> Any:
        self.asked.append(model)
        text = (REPOSITORY / model / "config.pbtxt").read_text()
        return service_pb2.ModelConfigResponse(config=text_format.Parse(text, mc.ModelConfig()))


def client_with(fake: FakeTriton) -> TritonClient:
    client = TritonClient(Settings())
    client._pool = EndpointPool([("fake", fake)])  # type: ignore[list-item]
    return client


def test_a_probe_past_its_deadline_means_not_ready_not_a_504() -> None:
    late = InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")
    client = client_with(FakeTriton(probe_error=late))
    assert asyncio.run(client.is_model_ready("upscale_realesrgan_x4plus")) is False


def test_a_probe_failing_oddly_means_not_ready_too() -> None:
    odd = InferenceServerException("boom", status="StatusCode.INTERNAL")
    client = client_with(FakeTriton(probe_error=odd))
    assert asyncio.run(client.is_model_ready("upscale_realesrgan_x4plus")) is False


def test_looking_up_an_ensemble_learns_its_steps_weight_facts() -> None:
    fake = FakeTriton()
    client = client_with(fake)
    facts = asyncio.run(client.model_facts("restore_gfpgan_v1_4"))
    assert facts.max_batch_size == 4
    assert {"face_to_tensor", "gfpgan_v1_4", "tensor_to_face"} <= set(fake.asked)
    weights = client.catalog.weights("restore_gfpgan_v1_4")
    assert weights.synthetic_models == ("gfpgan_v1_4",)
