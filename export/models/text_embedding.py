"""The Python BLS model in front of a text encoder (embed_text, embed_clip_text): UTF-8 strings
in, tokenised inside Triton, the encoder's embeddings out in request order.

Its model.py subclasses serving/bls/text_encoder_io.py's TextEncoderModel, which reads the
parameters written here; the export installs that module, text_tokenizer.py and the model's
own tokenizer sources and files next to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from export.spec import ModelSpec, TensorSpec
from export.triton_config import PythonModelSpec

# What every text model's model.py imports (text_encoder_io imports text_tokenizer).
SHARED_SOURCES = ("text_tokenizer.py", "text_encoder_io.py")


def text_embedding_model(
    *,
    name: str,
    description: str,
    encoder: ModelSpec,
    tokenizer_parameters: tuple[tuple[str, str], ...],
    max_texts: int,
    max_text_bytes: int,
    tokenizer_file: tuple[str, Callable[[], Path]],
    embedding: str,
    tokenizer_sources: tuple[str, ...] = (),
    other_files: tuple[tuple[str, Callable[[], Path]], ...] = (),
) -> PythonModelSpec:
    """text BYTES [-1] → embedding FP32 [-1, D] through `encoder` (its first output, D wide).

    `tokenizer_parameters` are what the model's tokenizer reads besides `tokenizer_file` (the
    name in the version folder and where the export finds it); `embedding` says what the vector
    is; `tokenizer_sources` are the serving/bls modules its model.py imports besides the shared
    ones, `other_files` the files it installs besides the tokenizer."""
    size = encoder.outputs[0].dims[-1]
    return PythonModelSpec(
        name=name,
        description=description,
        inputs=(TensorSpec("text", "TYPE_STRING", (-1,)),),
        outputs=(TensorSpec("embedding", "TYPE_FP32", (-1, size)),),
        parameters=(
            ("encoder_model", encoder.name),
            ("encoder_max_batch", str(encoder.batching.max_batch_size)),
            *tokenizer_parameters,
            ("max_texts", str(max_texts)),
            ("max_text_bytes", str(max_text_bytes)),
            ("tokenizer_file", tokenizer_file[0]),
            ("embedding", embedding),
        ),
        # Two instances: one request's tokenisation and answer overlap another's encoder call,
        # and both can have a call queued for the encoder's dynamic batcher.
        instances=2,
        max_queue_size=32,
        requires=(encoder.name,),
        shared_sources=(*SHARED_SOURCES, *tokenizer_sources),
        package_files=(tokenizer_file, *other_files),
    )
