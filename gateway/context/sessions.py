"""The served models behind the Image Context Extractor, built once on the gateway's client."""

from __future__ import annotations

from gateway.context.blip_session import TritonCaptioner
from gateway.context.clip_session import TritonClip
from gateway.context.extractor import ContextModels
from gateway.context.objects_session import TritonObjectDetector
from gateway.context.text_session import TritonTextEmbedder
from gateway.triton_client import TritonClient


def context_models(client: TritonClient) -> ContextModels:
    return ContextModels(
        captioner=TritonCaptioner(client),
        clip=TritonClip(client),
        text=TritonTextEmbedder(client),
        objects=TritonObjectDetector(client),
    )
