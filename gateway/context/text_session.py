"""The seed's sentence transformer (all-MiniLM-L6-v2) from Triton's `embed_text`, which takes
UTF-8 strings and tokenises inside Triton."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.errors import UpstreamError
from gateway.triton_client import TritonClient

MODEL = "embed_text"
INPUT = "text"
OUTPUT = "embedding"
# embed_text's `max_texts` parameter bounds one request; it is read from the config.
MAX_TEXTS_PARAMETER = "max_texts"


class TritonTextEmbedder:
    def __init__(self, client: TritonClient, model: str = MODEL) -> None:
        self._client = client
        self.model = model

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """[N, 384] unit vectors, in chunks of the model's own text limit."""
        facts = await self._client.model_facts(self.model)
        limit = max(1, int(facts.parameters.get(MAX_TEXTS_PARAMETER, "64")))
        parts = []
        for start in range(0, len(texts), limit):
            chunk = np.array([t.encode() for t in texts[start : start + limit]], dtype=np.object_)
            outputs = await self._client.infer(self.model, {INPUT: chunk}, [OUTPUT])
            vectors = np.asarray(outputs[OUTPUT], dtype=np.float32)
            if vectors.shape[0] != len(chunk):
                raise UpstreamError(
                    f"model '{self.model}' answered {vectors.shape[0]} vectors for {len(chunk)}"
                )
            parts.append(vectors)
        if not parts:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(parts)
