"""TritonCaptioner: photos resized here and sent to caption_blip in chunks of its `max_images`
(a model without a batch axis), the beam and token options as INT32 [1] only when given and
within the limits the config states; captions back in order."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from gateway.context import blip_session
from gateway.context.blip_session import TritonCaptioner, request_limit
from gateway.errors import BadRequest, UpstreamError
from triton_core.catalog import ModelFacts

PARAMETERS = {"max_images": "2", "max_num_beams": "5", "max_new_tokens_limit": "64"}


def facts(max_batch_size: int = 0, **parameters: str) -> ModelFacts:
    return ModelFacts(
        blip_session.MODEL, max_batch_size, (), (), None, None, (), PARAMETERS | parameters
    )


class FakeTriton:
    """Answers like caption_blip: one caption per image, naming the image's value."""

    def __init__(self, model_facts: ModelFacts, drop: bool = False) -> None:
        self.facts = model_facts
        self.drop = drop
        self.calls: list[dict[str, Any]] = []

    async def model_facts(self, model: str) -> ModelFacts:
        assert model == blip_session.MODEL
        return self.facts

    async def infer(self, model: str, inputs: dict[str, Any], outputs: list[str]) -> dict:
        assert outputs == [blip_session.CAPTION_OUTPUT]
        self.calls.append(
            {
                name: (a.shape, str(a.dtype), a.tolist() if a.size == 1 else None)
                for name, a in inputs.items()
            }
        )
        images = inputs[blip_session.IMAGE_INPUT]
        captions = np.array([f"photo {int(i[0, 0, 0])}".encode() for i in images], np.object_)
        return {outputs[0]: captions[1:] if self.drop else captions}


def photos(count: int) -> list[np.ndarray]:
    sizes = [(300, 400), (384, 384), (640, 480), (50, 80)]
    return [np.full((*sizes[i % 4], 3), i, np.uint8) for i in range(count)]


def test_five_photos_reach_a_model_of_two_images_a_request_as_two_two_one() -> None:
    triton = FakeTriton(facts())
    captions = asyncio.run(TritonCaptioner(triton).caption(photos(5)))  # type: ignore[arg-type]
    assert captions == [f"photo {i}" for i in range(5)]
    image = blip_session.IMAGE_INPUT
    assert [call[image][0][0] for call in triton.calls] == [2, 2, 1]
    assert {(*call[image][0][1:], call[image][1]) for call in triton.calls} == {
        (384, 384, 3, "uint8")
    }
    assert all(set(call) == {image} for call in triton.calls)  # the model's defaults apply


def test_beams_and_new_tokens_are_sent_as_int32_scalars() -> None:
    triton = FakeTriton(facts())
    captioner = TritonCaptioner(triton)  # type: ignore[arg-type]
    asyncio.run(captioner.caption(photos(1), num_beams=3, max_new_tokens=20))
    (call,) = triton.calls
    assert call[blip_session.NUM_BEAMS_INPUT] == ((1,), "int32", [3])
    assert call[blip_session.MAX_NEW_TOKENS_INPUT] == ((1,), "int32", [20])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_beams": 0}, "num_beams must be in 1..5"),
        ({"num_beams": 6}, "num_beams must be in 1..5"),
        ({"max_new_tokens": 65}, "max_new_tokens must be in 1..64"),
    ],
)
def test_options_beyond_the_configs_limits_are_refused_before_any_call(options, message) -> None:
    triton = FakeTriton(facts())
    with pytest.raises(BadRequest, match=message):
        asyncio.run(TritonCaptioner(triton).caption(photos(1), **options))  # type: ignore[arg-type]
    assert triton.calls == []


def test_a_batch_limit_stated_by_the_model_wins_over_max_images() -> None:
    assert request_limit(facts(max_batch_size=4)) == 4
    assert request_limit(facts()) == 2
    with pytest.raises(UpstreamError, match="max_images"):
        request_limit(ModelFacts("caption_blip", 0, (), (), None, None, (), {}))


def test_no_photos_make_no_call() -> None:
    triton = FakeTriton(facts())
    assert asyncio.run(TritonCaptioner(triton).caption([])) == []  # type: ignore[arg-type]
    assert triton.calls == []


def test_a_chunk_answered_with_too_few_captions_is_an_upstream_error() -> None:
    triton = FakeTriton(facts(), drop=True)
    with pytest.raises(UpstreamError, match="caption_blip"):
        asyncio.run(TritonCaptioner(triton).caption(photos(2)))  # type: ignore[arg-type]
