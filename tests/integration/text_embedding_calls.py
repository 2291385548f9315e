"""Calling a served text-embedding BLS model (embed_text, embed_clip_text) the way a
tritonclient user would, and the checks every such model passes alike (`TextModelChecks`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

Array = npt.NDArray[Any]


def embed_texts(client: grpcclient.InferenceServerClient, model: str, texts: list[bytes]) -> Array:
    """`model`'s embeddings of raw BYTES elements (any bytes: the server decodes them)."""
    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))
    outputs = [grpcclient.InferRequestedOutput("embedding")]
    result: Array = client.infer(model, [tensor], outputs=outputs).as_numpy("embedding")
    return result


def embed_strings(client: grpcclient.InferenceServerClient, model: str, texts: list[str]) -> Array:
    return embed_texts(client, model, [t.encode("utf-8") for t in texts])


def parity(ours: Array, theirs: Array) -> tuple[float, float]:
    """(max |Δ|, the lowest row cosine) of two [N, D] batches."""
    ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    cosines = (ours * theirs).sum(1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    return float(np.abs(ours - theirs).max()), float(cosines.min())


class TextModelChecks:
    """The checks every served text-embedding model passes alike. A test module subclasses it
    as `Test<Model>`, setting the three attributes, next to its module's `client` fixture."""

    model: str
    embedding_size: int
    max_text_bytes: int

    def test_an_empty_request_answers_no_embeddings(self, client) -> None:
        assert embed_texts(client, self.model, []).shape == (0, self.embedding_size)

    @pytest.mark.parametrize("case", ["not UTF-8", "too long"])
    def test_malformed_texts_are_refused_with_the_reason(self, client, case: str) -> None:
        texts, message = {
            "not UTF-8": ([b"\xff\xfe not utf-8"], "not UTF-8"),
            "too long": ([b"x" * (self.max_text_bytes + 1)], "bytes, more than"),
        }[case]
        with pytest.raises(InferenceServerException, match=message) as raised:
            embed_texts(client, self.model, texts)
        assert "INVALID_ARG" in str(raised.value.status())

    def test_metadata_names_the_text_it_takes_and_the_vectors_it_gives(self, client) -> None:
        metadata = client.get_model_metadata(self.model, as_json=True)
        assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
        assert metadata["outputs"] == [
            {"name": "embedding", "datatype": "FP32", "shape": ["-1", str(self.embedding_size)]}
        ]
