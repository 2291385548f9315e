"""The list of exportable things, written out explicitly (no import-time decorators)."""

from __future__ import annotations

from collections.abc import Iterable

from export.ensembles import ENSEMBLES
from export.graphs import GRAPHS, GraphSpec
from export.models.realesrgan import REALESR_GENERAL_X4V3, REALESRGAN_X4PLUS
from export.spec import ModelSpec

MODELS: dict[str, ModelSpec] = {s.name: s for s in (REALESRGAN_X4PLUS, REALESR_GENERAL_X4V3)}


def known_names() -> list[str]:
    return [*MODELS, *GRAPHS]


def expand(names: Iterable[str]) -> list[ModelSpec | GraphSpec]:
    """Resolve `all` and add what each model requires (its ensemble steps), in install order."""
    wanted = known_names() if "all" in names else list(names)
    unknown = [n for n in wanted if n not in MODELS and n not in GRAPHS]
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {known_names()}")
    ordered: list[str] = []
    for name in wanted:
        requires = MODELS[name].requires if name in MODELS else ()
        for item in (*requires, name):
            if item not in ordered:
                ordered.append(item)
    return [MODELS[n] if n in MODELS else GRAPHS[n] for n in ordered]


__all__ = ["ENSEMBLES", "GRAPHS", "MODELS", "expand", "known_names"]
