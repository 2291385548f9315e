"""The list of exportable things, written out explicitly (no import-time decorators)."""

from __future__ import annotations

from collections.abc import Iterable

from export.ensembles import ENSEMBLES
from export.graphs import GRAPHS, GraphSpec
from export.models.arcface import ARCFACE_W600K_R50
from export.models.blip import BLIP_GRAPHS, CAPTION_BLIP
from export.models.clip import CLIP_VIT_B32_TEXTUAL, CLIP_VIT_B32_VISUAL, EMBED_CLIP_TEXT
from export.models.dlib_face import DLIB_RESNET_V1
from export.models.gfpgan import GFPGAN_V1_4
from export.models.inswapper import INSWAPPER_128, SWAP_LATENT
from export.models.minilm import EMBED_TEXT, MINILM_L6_V2
from export.models.mtcnn import FACE_DETECT_MTCNN, MTCNN_NETS
from export.models.nanodet import DETECT_OBJECTS, NANODET_COCO
from export.models.realesrgan import REALESR_GENERAL_X4V3, REALESRGAN_X4PLUS
from export.models.scrfd import FACE_DETECT_SCRFD, SCRFD_10G
from export.packaged import PackagedOnnxSpec
from export.spec import ModelSpec
from export.tfjs_package import TfjsPackageSpec
from export.triton_config import PythonModelSpec

MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        REALESRGAN_X4PLUS,
        REALESR_GENERAL_X4V3,
        GFPGAN_V1_4,
        SCRFD_10G,
        DLIB_RESNET_V1,
        ARCFACE_W600K_R50,
        SWAP_LATENT,
        INSWAPPER_128,
        MINILM_L6_V2,
        CLIP_VIT_B32_VISUAL,
        CLIP_VIT_B32_TEXTUAL,
        *BLIP_GRAPHS,
    )
}

# Weights that registry packages ship: ONNX files installed unchanged, and TF.js graph models
# converted by export/tfjs_onnx.py.
PACKAGED: dict[str, PackagedOnnxSpec | TfjsPackageSpec] = {
    s.name: s for s in (*MTCNN_NETS, NANODET_COCO)
}
# Python-backend models committed as source (<name>/1/model.py): nothing to export; naming one
# installs the models it calls.
PYTHON_MODELS: dict[str, PythonModelSpec] = {
    s.name: s
    for s in (
        FACE_DETECT_MTCNN,
        FACE_DETECT_SCRFD,
        EMBED_TEXT,
        DETECT_OBJECTS,
        EMBED_CLIP_TEXT,
        CAPTION_BLIP,
    )
}

ExportSpec = ModelSpec | GraphSpec | PackagedOnnxSpec | TfjsPackageSpec


def known_names() -> list[str]:
    return [*MODELS, *GRAPHS, *PACKAGED, *PYTHON_MODELS]


def _exportable(name: str) -> ExportSpec:
    return MODELS[name] if name in MODELS else GRAPHS.get(name) or PACKAGED[name]


def expand(names: Iterable[str]) -> list[ExportSpec]:
    """Resolve `all` and add what each model requires (its ensemble steps), in install order."""
    wanted = known_names() if "all" in names else list(names)
    unknown = [n for n in wanted if n not in known_names()]
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {known_names()}")
    ordered: list[str] = []
    for name in wanted:
        if name in PYTHON_MODELS:
            items: tuple[str, ...] = PYTHON_MODELS[name].requires
        else:
            items = (*(MODELS[name].requires if name in MODELS else ()), name)
        for item in items:
            if item not in ordered:
                ordered.append(item)
    return [_exportable(n) for n in ordered]


__all__ = [
    "ENSEMBLES",
    "GRAPHS",
    "MODELS",
    "PACKAGED",
    "PYTHON_MODELS",
    "expand",
    "known_names",
]
