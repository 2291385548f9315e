"""One way to send more items than a model takes at once: chunks of the model's batch limit
(read from its config), sent in order and joined back together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# How many images the Image Context Extractor computes together (one BLIP, one CLIP and one
# MiniLM call per batch): one source for the gateway's FACET_CONTEXT_BATCH_IMAGES default and
# the TensorRT profiles' optimum batch of those models (the batch those engines really get).
DEFAULT_CONTEXT_BATCH_IMAGES: Final = 8


def batch_slices(count: int, limit: int) -> list[slice]:
    """Consecutive slices covering `count` items, none longer than `limit`."""
    if limit < 1:
        raise ValueError(
            f"a batch limit must be at least 1, got {limit} (a model without a batch axis?)"
        )
    return [slice(start, min(start + limit, count)) for start in range(0, count, limit)]


async def run_in_batches(
    call: Callable[[Array], Awaitable[Array]], items: Array, limit: int
) -> Array:
    """`call` on chunks of at most `limit` items along axis 0; results concatenated in order.

    Raises ValueError when a chunk's answer does not have one row per item sent.
    """
    outputs = []
    for chunk in batch_slices(len(items), limit):
        answer = await call(items[chunk])
        if len(answer) != chunk.stop - chunk.start:
            raise ValueError(
                f"a batch of {chunk.stop - chunk.start} came back with {len(answer)} rows"
            )
        outputs.append(answer)
    if not outputs:
        return items[:0]
    return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
